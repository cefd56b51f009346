"""Git LFS over SSH alone: the ``git-lfs-transfer`` protocol (git-lfs ``docs/proposals/ssh_adapter.md``).

Used for SSH remotes whose server offers no ``git-lfs-authenticate`` but speaks this protocol
(Gitea, GitLab, charmbracelet/scutiger servers). Framing is git's pkt-line (``0000`` flush,
``0001`` delim). A session is ``git-lfs-transfer <path> upload|download`` on a channel of the
operation's SSH connection: capabilities (``version=1``) → ``version 1`` → ``status 200``,
then ``batch`` / ``put-object`` + ``verify-object`` / ``get-object``, then ``quit``. Objects
move on up to ``jobs`` sessions at once; a download lands in the cache only once its oid
and size match.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from ..errors import BlobNotFound, LfsregError
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, ProgressEvent, no_progress
from ..ssh.connection import Channel, SshConnection
from ..ssh.errors import CommandMissing, command_failed
from ..ssh.url import SshUrl
from .cache import ObjectCache
from .queue import TransferError
from .ssh import remote_path_arg

log = logging.getLogger(__name__)
MAX_DATA = 65516  # pkt-line payload limit (65520 with the 4-byte header)
FLUSH, DELIM = object(), object()
BATCH_SIZE = 100
_KV = re.compile(r"^[A-Za-z0-9_-]+=\S*$")


class TransferMissing(LfsregError):
    """The server does not speak git-lfs-transfer."""


class ProtocolError(LfsregError):
    """The server broke the git-lfs-transfer protocol."""


class Session:
    """One ``git-lfs-transfer`` command after a successful version handshake."""

    def __init__(self, connection: SshConnection, path: str, operation: str, label: str) -> None:
        self.label = label
        self.operation = operation
        self._chan: Channel = connection.exec(f"git-lfs-transfer {remote_path_arg(path)} {operation}")
        try:
            caps = self._read_list()
        except ProtocolError:
            if self._chan.received:
                raise TransferMissing(f"{label}: git-lfs-transfer did not advertise its capabilities") from None
            err = command_failed(label, "git-lfs-transfer", self._chan.exit_status(), self._chan.stderr(), writing=operation == "upload")
            self._chan.close()
            if isinstance(err, CommandMissing):
                raise TransferMissing(str(err)) from None
            raise err from None
        if "version=1" not in caps:
            self._chan.close()
            raise TransferMissing(f"{label}: git-lfs-transfer does not offer protocol version 1")
        try:
            status, _, lines = self.request("version 1")
        except ProtocolError as exc:
            self._chan.close()
            raise TransferMissing(str(exc)) from None
        if status != 200:
            self._chan.close()
            raise TransferMissing(f"{label}: git-lfs-transfer refused version 1 (status {status}{': ' + lines[0] if lines else ''})")

    # -- pkt-line -------------------------------------------------------------------------------
    def _pkt(self, data: bytes) -> bytes:
        return b"%04x" % (len(data) + 4) + data

    def _read(self) -> bytes | object:
        head = self._chan.read(4)
        if len(head) < 4:
            raise ProtocolError(f"{self.label}: git-lfs-transfer closed the connection")
        try:
            size = int(head, 16)
        except ValueError:
            raise ProtocolError(f"{self.label}: git-lfs-transfer sent a malformed packet") from None
        if size == 0:
            return FLUSH
        if size == 1:
            return DELIM
        if size < 4:
            raise ProtocolError(f"{self.label}: git-lfs-transfer sent a malformed packet")
        data = self._chan.read(size - 4)
        if len(data) < size - 4:
            raise ProtocolError(f"{self.label}: git-lfs-transfer closed the connection mid-packet")
        return data

    def _text(self, pkt: bytes | object) -> str:
        if not isinstance(pkt, bytes):
            raise ProtocolError(f"{self.label}: git-lfs-transfer: unexpected delimiter")
        return pkt.decode("utf-8", "replace").rstrip("\n")

    def _read_list(self) -> list[str]:
        out = []
        while (pkt := self._read()) is not FLUSH:
            out.append(self._text(pkt))
        return out

    def send(
        self,
        command: str,
        args: Sequence[str] = (),
        lines: Sequence[str] | None = None,
        data: Callable[[Callable[[bytes], None]], None] | None = None,
    ) -> None:
        """Send a request: command, arguments, then (after a delim) text lines or binary data."""
        out = [self._pkt(f"{command}\n".encode())] + [self._pkt(f"{a}\n".encode()) for a in args]
        if lines is not None or data is not None:
            out.append(b"0001")
            out.extend(self._pkt(f"{line}\n".encode()) for line in lines or ())
        self._chan.write(b"".join(out))
        if data is not None:
            data(lambda chunk: self._chan.write(self._pkt(chunk)))
        self._chan.write(b"0000")

    def response(self, sink: Callable[[bytes], None] | None = None) -> tuple[int, list[str], list[str]]:
        """Read ``status NNN``, arguments and, after a delim, text lines (or data into ``sink`` on 200)."""
        first = self._text(self._read())
        m = re.fullmatch(r"status (\d{3})", first)
        if not m:
            raise ProtocolError(f"{self.label}: git-lfs-transfer: expected a status, got {first[:60]!r}")
        status = int(m.group(1))
        args: list[str] = []
        while (pkt := self._read()) is not DELIM:
            if pkt is FLUSH:
                return status, args, []
            args.append(self._text(pkt))
        lines: list[str] = []
        while (pkt := self._read()) is not FLUSH:
            if sink is not None and status == 200:
                sink(pkt)  # type: ignore[arg-type]
            else:
                lines.append(self._text(pkt))
        return status, args, lines

    def request(self, command: str, args: Sequence[str] = (), lines: Sequence[str] | None = None) -> tuple[int, list[str], list[str]]:
        """Send a request and read its response."""
        self.send(command, args, lines)
        return self.response()

    # -- commands -------------------------------------------------------------------------------
    def batch(self, objects: Sequence[LfsObject], ref: str | None) -> dict[str, tuple[str, list[str]]]:
        """``{oid: (action, args)}``: ``upload``/``download`` with the ``id``/``token`` to pass on, or ``noop``."""
        args = ["transfer=ssh", "hash-algo=sha256"] + ([f"refname={ref}"] if ref else [])
        status, rargs, lines = self.request("batch", args, [f"{o.oid} {o.size}" for o in objects])
        if status != 200:
            raise LfsregError(f"{self.label}: LFS batch {self.operation}: status {status}{': ' + lines[0] if lines else ''}")
        if any(a.startswith("hash-algo=") and a != "hash-algo=sha256" for a in rargs):
            raise ProtocolError(f"{self.label}: the server uses a hash algorithm other than sha256")
        wanted = {o.oid for o in objects}
        actions: dict[str, tuple[str, list[str]]] = {}
        for line in lines:
            fields = line.split(" ")
            if len(fields) < 3 or fields[0] not in wanted:
                raise ProtocolError(f"{self.label}: malformed batch line {line[:80]!r}")
            keep = [kv for kv in fields[3:] if _KV.match(kv) and kv.split("=", 1)[0] in ("id", "token")]
            if fields[2] != "noop" or fields[0] not in actions:
                actions[fields[0]] = (fields[2], keep)
        return actions

    def put(self, obj: LfsObject, path: str, args: list[str], progress: Callable[[int], None]) -> None:
        """``put-object`` the file, then ``verify-object``."""

        def data(write: Callable[[bytes], None]) -> None:
            with open(path, "rb") as f:
                while chunk := f.read(MAX_DATA):
                    write(chunk)
                    progress(len(chunk))

        self.send(f"put-object {obj.oid}", [f"size={obj.size}", *args], lines=[], data=data)
        status, _, lines = self.response()
        if status != 200:
            raise LfsregError(f"{self.label}: upload of sha256:{obj.oid}: status {status}{': ' + lines[0] if lines else ''}")
        status, _, lines = self.request(f"verify-object {obj.oid}", [f"size={obj.size}", *args])
        if status != 200:
            raise LfsregError(f"{self.label}: verify of sha256:{obj.oid}: status {status}{': ' + lines[0] if lines else ''}")

    def get(self, obj: LfsObject, out: BinaryIO, args: list[str], progress: Callable[[int], None]) -> None:
        """``get-object`` into ``out``, checking size and oid."""
        h = hashlib.sha256()
        count = 0

        def sink(chunk: bytes) -> None:
            nonlocal count
            count += len(chunk)
            if count > obj.size:
                raise ProtocolError(f"{self.label}: the server sent more than {obj.size} bytes for sha256:{obj.oid}")
            h.update(chunk)
            out.write(chunk)
            progress(len(chunk))

        self.send(f"get-object {obj.oid}", [f"size={obj.size}", *args])
        status, _, lines = self.response(sink)
        if status == 404:
            raise BlobNotFound(f"{self.label}: LFS object sha256:{obj.oid} is not on the server")
        if status != 200:
            raise LfsregError(f"{self.label}: download of sha256:{obj.oid}: status {status}{': ' + lines[0] if lines else ''}")
        if count != obj.size or h.hexdigest() != obj.oid:
            raise LfsregError(f"{self.label}: LFS object sha256:{obj.oid} arrived corrupt ({count} bytes)")

    def quit(self) -> None:
        """End the session politely and close the channel."""
        with contextlib.suppress(LfsregError, OSError, EOFError):
            self.request("quit")
        self._chan.close()


class SshTransferLfsStore:
    """:class:`lfsreg.lfs.store.LfsStore` over ``git-lfs-transfer``, objects cached in ``cache``."""

    def __init__(
        self, connection: SshConnection, url: SshUrl, cache: ObjectCache, label: str, *, jobs: int = 4, ref: str | None = "refs/heads/main"
    ) -> None:
        self._connection = connection
        self._path = url.path
        self._cache = cache
        self.label = label
        self.jobs = max(1, jobs)
        self.ref = ref
        self._idle: dict[str, Session] = {}

    def _session(self, operation: str) -> Session:
        return self._idle.pop(operation, None) or Session(self._connection, self._path, operation, self.label)

    def probe(self, operation: str) -> None:
        """Start a session (kept for the next call); :class:`TransferMissing` if the server has no git-lfs-transfer."""
        self._idle[operation] = self._session(operation)

    def _batch(self, session: Session, objects: Sequence[LfsObject]) -> dict[str, tuple[str, list[str]]]:
        actions: dict[str, tuple[str, list[str]]] = {}
        for i in range(0, len(objects), BATCH_SIZE):
            actions.update(session.batch(objects[i : i + BATCH_SIZE], self.ref))
        return actions

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects for which the server asks for an upload."""
        if not objects:
            return []
        session = self._session("upload")
        actions = self._batch(session, objects)
        self._idle["upload"] = session
        return [o for o in objects if actions.get(o.oid, ("upload", []))[0] != "noop"]

    def _parallel(
        self,
        operation: str,
        first: Session,
        work: Sequence[tuple[LfsObject, list[str]]],
        do: Callable[[Session, LfsObject, list[str]], None],
    ) -> None:
        todo: queue.SimpleQueue[tuple[LfsObject, list[str]]] = queue.SimpleQueue()
        for item in work:
            todo.put(item)
        failures: dict[str, LfsregError] = {}

        def worker(session: Session | None) -> None:
            try:
                session = session or Session(self._connection, self._path, operation, self.label)
            except LfsregError as exc:
                if not failures:
                    failures["(session)"] = exc
                return
            try:
                while True:
                    try:
                        obj, args = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        do(session, obj, args)
                    except LfsregError as exc:
                        failures[obj.oid] = exc
                        return  # the stream may be out of step: end this session
            finally:
                session.quit()

        count = min(self.jobs, len(work))
        with ThreadPoolExecutor(count, thread_name_prefix="lfsreg-lfs-ssh") as pool:
            for future in [pool.submit(worker, first if i == 0 else None) for i in range(count)]:
                future.result()
        left = []
        while not todo.empty():
            left.append(todo.get_nowait()[0])
        for obj in left:
            failures.setdefault(obj.oid, LfsregError(f"{self.label}: not transferred (every session failed)"))
        if len(failures) > 1:
            failures.pop("(session)", None)
        if failures:
            raise TransferError(operation, failures)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload what the server lacks (with ``verify-object``), then cache every staged file."""
        if items:
            session = self._session("upload")
            actions = self._batch(session, [o for o, _ in items])
            paths = {o.oid: p for o, p in items}
            work = [(o, actions[o.oid][1]) for o, _ in items if actions.get(o.oid, ("upload", []))[0] == "upload"]

            def do(s: Session, obj: LfsObject, args: list[str]) -> None:
                key = f"sha256:{obj.oid}"
                progress(ProgressEvent(key, "upload", obj.size))
                s.put(obj, paths[obj.oid], args, lambda n: progress(ProgressEvent(key, "upload", obj.size, n)))
                progress(ProgressEvent(key, "upload", obj.size, 0, True))

            if work:
                self._parallel("upload", session, work, do)
            else:
                self._idle["upload"] = session
        for obj, staged in items:
            self._cache.adopt(obj, staged)

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Download the objects that are not validly cached."""
        todo = [o for o in objects if not self._cache.valid(o)]
        if not todo:
            return
        session = self._session("download")
        actions = self._batch(session, todo)
        for obj in todo:
            if actions.get(obj.oid, ("", []))[0] != "download":
                session.quit()
                raise BlobNotFound(f"{self.label}: LFS object sha256:{obj.oid} is not on the server")

        def do(s: Session, obj: LfsObject, args: list[str]) -> None:
            key = f"sha256:{obj.oid}"
            progress(ProgressEvent(key, "download", obj.size))
            with self._cache.staging() as (out, path):
                s.get(obj, out, args, lambda n: progress(ProgressEvent(key, "download", obj.size, n)))
                out.flush()
                self._cache.adopt(obj, path)
            progress(ProgressEvent(key, "download", obj.size, 0, True))

        self._parallel("download", session, [(o, actions[o.oid][1]) for o in todo], do)

    @contextlib.contextmanager
    def staging(self) -> Iterator[tuple[BinaryIO, str]]:
        """Stage in the cache."""
        with self._cache.staging() as staged:
            yield staged

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open the cached copy."""
        return self._cache.open(obj, self.label)
