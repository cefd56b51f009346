"""The ``git-lfs-transfer`` adapter: Git LFS over SSH alone (git-lfs ``docs/proposals/ssh_adapter.md``).

Used for SSH remotes whose server offers no ``git-lfs-authenticate`` but speaks this protocol
(Gitea, GitLab, charmbracelet/scutiger servers). A session is ``git-lfs-transfer <path>
upload|download`` on a channel of the operation's SSH connection, framed in pkt-lines
(:mod:`lfsreg.ssh.pktline`): capabilities (``version=1``) → ``version 1`` → ``status 200``,
then ``batch`` / ``put-object`` + ``verify-object`` / ``get-object``, then ``quit``.

:class:`SshTransferAdapter` is a :class:`lfsreg.lfs.queue.Adapter`: the transfer queue does
batching, concurrency and retries, as for HTTP. Sessions are pooled per operation (one per
concurrent transfer); a session whose exchange failed is closed, never reused, because its
stream may be out of step.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence

from ..errors import BlobNotFound, CorruptContentError, LfsregError, ProtocolError, RetriableError, error_for_status
from ..formats.lfs_pointer import LfsObject
from ..ssh import pktline
from ..ssh.connection import Channel, SshConnection
from ..ssh.errors import CommandMissing, command_failed
from ..ssh.url import SshUrl, remote_path_arg
from ..staging import VerifiedWriter
from .batch import Action, BatchItem
from .cache import ObjectCache
from .queue import Progress

log = logging.getLogger(__name__)
_KV = re.compile(r"^[A-Za-z0-9_-]+=\S*$")
_SIZE = re.compile(r"[0-9]{1,20}")
_CHANNEL_ERRORS = (OSError, EOFError)


def _status_error(status: int, what: str, lines: Sequence[str]) -> LfsregError:
    said = f": {lines[0][:200]}" if lines else ""
    if status == 404:
        return BlobNotFound(f"{what}: not on the server{said}")
    message = f"{what}: status {status}{said}"
    return error_for_status(status, message) if 400 <= status <= 599 else ProtocolError(message)


class Session:
    """One ``git-lfs-transfer`` command after a successful version handshake.

    Raises (from the constructor) :class:`CommandMissing` if the server does not speak the
    protocol, or the classified refusal (e.g. a read-only key asking to upload).
    """

    def __init__(self, connection: SshConnection, path: str, operation: str, label: str) -> None:
        self.label = label
        self.operation = operation
        try:
            self._chan: Channel = connection.exec(f"git-lfs-transfer {remote_path_arg(path)} {operation}")
        except _CHANNEL_ERRORS as exc:
            raise RetriableError(f"{label}: git-lfs-transfer: {type(exc).__name__}") from None
        self._pkts = pktline.PacketReader(self._read, f"{label}: git-lfs-transfer")
        try:
            caps = self._pkts.lines()
        except (ProtocolError, RetriableError):
            if self._chan.received:
                self._chan.close()
                raise CommandMissing(f"{label}: git-lfs-transfer did not advertise its capabilities") from None
            err = command_failed(label, "git-lfs-transfer", self._chan.exit_status(), self._chan.stderr(), writing=operation == "upload")
            self._chan.close()
            raise err from None
        if "version=1" not in caps:
            self._chan.close()
            raise CommandMissing(f"{label}: git-lfs-transfer does not offer protocol version 1")
        try:
            status, _, lines = self.request("version 1")
        except LfsregError as exc:
            self._chan.close()
            raise CommandMissing(str(exc)) from None
        if status != 200:
            self._chan.close()
            raise CommandMissing(f"{label}: git-lfs-transfer refused version 1 (status {status}{': ' + lines[0] if lines else ''})")

    def _read(self, n: int) -> bytes:
        try:
            return self._chan.read(n)
        except TimeoutError:  # the channel's read timeout (SshConnection.exec): a stall, retried like a cut
            raise RetriableError(f"{self.label}: git-lfs-transfer: the server sent nothing within the read timeout (stalled)") from None

    def send(
        self,
        command: str,
        args: Sequence[str] = (),
        lines: Sequence[str] | None = None,
        data: Callable[[Callable[[bytes], None]], None] | None = None,
    ) -> None:
        """Send a request: command, arguments, then (after a delim) text lines or binary data."""
        out = [pktline.encode_text(command)] + [pktline.encode_text(a) for a in args]
        if lines is not None or data is not None:
            out.append(pktline.DELIM_PKT)
            out.extend(pktline.encode_text(line) for line in lines or ())
        try:
            self._chan.write(b"".join(out))
            if data is not None:
                data(lambda chunk: self._chan.write(pktline.encode(chunk)))
            self._chan.write(pktline.FLUSH_PKT)
        except _CHANNEL_ERRORS as exc:
            raise RetriableError(f"{self.label}: git-lfs-transfer: the connection failed ({type(exc).__name__})") from None

    def response(self, sink: Callable[[bytes], None] | None = None) -> tuple[int, list[str], list[str]]:
        """Read ``status NNN``, arguments and, after a delim, text lines (or data into ``sink`` on 200)."""
        first = self._pkts.text()
        m = re.fullmatch(r"status (\d{3})", first)
        if not m:
            raise ProtocolError(f"{self.label}: git-lfs-transfer: expected a status, got {first[:60]!r}")
        status = int(m.group(1))
        args: list[str] = []
        while (pkt := self._pkts.packet()) is not pktline.DELIM:
            if pkt is pktline.FLUSH:
                return status, args, []
            args.append(self._pkts.text(pkt))
        lines: list[str] = []
        while (pkt := self._pkts.packet()) is not pktline.FLUSH:
            if sink is not None and status == 200 and isinstance(pkt, bytes):
                sink(pkt)
            else:
                lines.append(self._pkts.text(pkt))
        return status, args, lines

    def request(self, command: str, args: Sequence[str] = (), lines: Sequence[str] | None = None) -> tuple[int, list[str], list[str]]:
        """Send a request and read its response."""
        self.send(command, args, lines)
        return self.response()

    def batch(self, objects: Sequence[LfsObject], ref: str | None) -> dict[str, tuple[str, list[str], int]]:
        """``{oid: (action, args, size)}`` (see :func:`parse_batch_lines`)."""
        args = ["transfer=ssh", "hash-algo=sha256"] + ([f"refname={ref}"] if ref else [])
        status, rargs, lines = self.request("batch", args, [f"{o.oid} {o.size}" for o in objects])
        if status != 200:
            raise _status_error(status, f"{self.label}: LFS batch {self.operation}", lines)
        if any(a.startswith("hash-algo=") and a != "hash-algo=sha256" for a in rargs):
            raise ProtocolError(f"{self.label}: the server uses a hash algorithm other than sha256")
        return parse_batch_lines(lines, {o.oid for o in objects}, self.label)

    def put(self, obj: LfsObject, path: str, args: list[str], progress: Progress) -> None:
        """``put-object`` the file (reopened on every call)."""

        def data(write: Callable[[bytes], None]) -> None:
            with open(path, "rb") as f:
                while chunk := f.read(pktline.MAX_DATA):
                    write(chunk)
                    progress(len(chunk))

        what = f"{self.label}: upload of sha256:{obj.oid}"
        self.send(f"put-object {obj.oid}", [f"size={obj.size}", *args], lines=[], data=data)
        status, _, lines = self.response()
        if status != 200:
            raise _status_error(status, what, lines)

    def verify(self, obj: LfsObject, args: list[str]) -> None:
        """``verify-object``: the server confirms it holds the object."""
        status, _, lines = self.request(f"verify-object {obj.oid}", [f"size={obj.size}", *args])
        if status != 200:
            raise _status_error(status, f"{self.label}: verify of sha256:{obj.oid}", lines)

    def get(self, obj: LfsObject, out: VerifiedWriter, args: list[str], progress: Progress) -> None:
        """``get-object`` into ``out`` (which checks size and oid on commit)."""

        def sink(chunk: bytes) -> None:
            out.write(chunk)
            progress(len(chunk))

        self.send(f"get-object {obj.oid}", [f"size={obj.size}", *args])
        status, _, lines = self.response(sink)
        if status != 200:
            raise _status_error(status, f"{self.label}: download of sha256:{obj.oid}", lines)

    def quit(self) -> None:
        """End the session politely and close the channel."""
        with contextlib.suppress(LfsregError, *_CHANNEL_ERRORS):
            self.request("quit")
        self.close()

    def close(self) -> None:
        """Close the channel at once."""
        with contextlib.suppress(*_CHANNEL_ERRORS):
            self._chan.close()


def parse_batch_lines(lines: Sequence[str], wanted: set[str], label: str) -> dict[str, tuple[str, list[str], int]]:
    """Validate the lines of a ``batch`` response: ``<oid> <size> <action> [id=… token=…]``.

    Returns ``{oid: (action, args, size)}``: ``upload``/``download`` with the ``id``/``token`` to
    pass on, or ``noop``; ``size`` is the server's, which need not be the one asked about (a
    server answers ``noop`` with the size of the copy it holds).
    """
    actions: dict[str, tuple[str, list[str], int]] = {}
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 3 or fields[0] not in wanted or not _SIZE.fullmatch(fields[1]) or fields[2] not in ("upload", "download", "noop"):
            raise ProtocolError(f"{label}: malformed batch line {line[:80]!r}")
        keep = [kv for kv in fields[3:] if _KV.match(kv) and kv.split("=", 1)[0] in ("id", "token")]
        if fields[2] != "noop" or fields[0] not in actions:
            actions[fields[0]] = (fields[2], keep, int(fields[1]))
    return actions


class SshTransferAdapter:
    """:class:`lfsreg.lfs.queue.Adapter` over ``git-lfs-transfer`` sessions on one SSH connection."""

    def __init__(self, connection: SshConnection, url: SshUrl, label: str) -> None:
        self._connection = connection
        self._path = url.path
        self.label = label
        self._lock = threading.Lock()
        self._idle: dict[str, list[Session]] = {"upload": [], "download": []}

    @contextlib.contextmanager
    def _session(self, operation: str) -> Iterator[Session]:
        """A session for ``operation``: back to the pool after success, closed after any failure."""
        with self._lock:
            session = self._idle[operation].pop() if self._idle[operation] else None
        if session is None:
            session = Session(self._connection, self._path, operation, self.label)
        try:
            yield session
        except BaseException:
            session.close()
            raise
        with self._lock:
            self._idle[operation].append(session)

    def probe(self, operation: str) -> None:
        """Start a session (kept for later); :class:`CommandMissing` if the server has no git-lfs-transfer."""
        with self._session(operation):
            pass

    def end(self) -> None:
        """Quit every idle session (an SSH server allows only so many per connection)."""
        with self._lock:
            sessions = [s for pool in self._idle.values() for s in pool]
            self._idle = {"upload": [], "download": []}
        for session in sessions:
            session.quit()

    def batch(self, operation: str, objects: Sequence[LfsObject], ref: str | None) -> list[BatchItem]:
        """One ``batch`` request; an object the server answers ``noop`` to needs no transfer.

        Except on upload when the server's ``noop`` names another size: what it holds under
        that oid is not the object (e.g. a truncated copy), so ours is sent and replaces it.
        A download the server offers with another size is refused the same way, before a byte
        moves (``verify`` learns of the damage from this answer alone).
        """
        with self._session(operation) as session:
            answers = session.batch(objects, ref)
        items = []
        for obj in objects:
            action, args, size = answers.get(obj.oid, ("upload" if operation == "upload" else "noop", [], obj.size))
            if operation == "upload" and action == "noop" and size != obj.size:
                log.info("%s: the server holds %d bytes as sha256:%s, not %d: uploading it again", self.label, size, obj.oid, obj.size)
                action = "upload"
            if operation == "download" and action == "download" and size != obj.size:
                # what it would send is not the object: say so now (verify asks nothing more)
                items.append(BatchItem(obj, {}, (422, f"the server's copy is damaged: it holds {size} bytes, not {obj.size}")))
                continue
            if action == operation:
                header = dict(kv.split("=", 1) for kv in args)
                items.append(BatchItem(obj, {operation: Action(f"git-lfs-transfer {self.label}", header, None)}))
            elif operation == "download":
                items.append(BatchItem(obj, {}, (404, "not on the server")))
            else:
                items.append(BatchItem(obj, {}))
        return items

    @staticmethod
    def _args(action: Action) -> list[str]:
        return [f"{k}={v}" for k, v in action.header.items()]

    def upload(self, item: BatchItem, path: str, progress: Progress) -> None:
        """``put-object`` on a pooled session."""
        with self._session("upload") as session:
            session.put(item.obj, path, self._args(item.actions["upload"]), progress)

    def verify(self, item: BatchItem) -> None:
        """``verify-object`` (always: the protocol has no optional verify)."""
        with self._session("upload") as session:
            session.verify(item.obj, self._args(item.actions["upload"]))

    def download(self, item: BatchItem, cache: ObjectCache, progress: Progress) -> None:
        """``get-object`` into the cache, verified before it appears there.

        Wrong content is final (:class:`CorruptContentError`), not retried: SSH delivers the
        pkt-lines intact or not at all (a cut raises :class:`RetriableError` in the reader), so
        a complete answer with the wrong bytes is the server's copy, sent the same every time.
        """
        obj = item.obj
        what = f"{self.label}: download of sha256:{obj.oid}"
        with self._session("download") as session, cache.writer(obj, what) as out:
            try:
                session.get(obj, out, self._args(item.actions["download"]), progress)
                out.commit()
            except CorruptContentError as exc:
                raise CorruptContentError(f"the server's copy is damaged: {exc}") from None
