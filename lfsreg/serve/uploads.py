"""Blob upload sessions of the distribution API, and the blobs they staged in the LFS store.

A session (``POST /v2/<name>/blobs/uploads/``) is a staging file of the registry's LFS store
(``LfsStore.staging()``, the file a push stages a layer in): every chunk a client sends is
appended to it and hashed as it arrives (:class:`lfsreg.staging.VerifiedWriter`), so memory is
one read buffer whatever the blob's size. The closing ``PUT ?digest=`` checks size and sha256
and hands the file to ``LfsStore.upload()``, the path every push takes (a rename into
``lfs/objects`` for a local registry; the LFS batch API, then the local cache, for a remote
one). The blob is then *staged*: in the LFS store, not yet in the registry's tree, until a
manifest naming it is put (ops/publish.py reads it from there). :meth:`Uploads.staged` answers
for those blobs, so the read side can serve them before any manifest names them.

Sessions live in this process (a client continues its upload on the server it started it
with; several ``serve`` processes behind one address need sticky sessions for uploads only:
staged blobs themselves are in the shared LFS store). Sessions idle longer than ``expiry``
seconds are dropped with their file; at most ``max_sessions`` are open at once. Each session
has its own lock, so concurrent requests on one session are serialised and different sessions
run in parallel.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..digest import CHUNK, Digest
from ..errors import CorruptContentError, NotFoundError, ProtocolError, RetriableError
from ..formats.lfs_pointer import LfsObject
from ..lfs.store import LfsStore
from ..staging import Reader, VerifiedWriter, forget

log = logging.getLogger(__name__)
DEFAULT_EXPIRY = 3600.0
DEFAULT_MAX_SESSIONS = 256
#: Staged blobs remembered for reads before their manifest comes (the oldest are forgotten first:
#: a manifest put still finds them in the LFS store, only a GET of such a blob before it is 404).
MAX_STAGED = 100_000
_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)")
_UUID = re.compile(r"[0-9a-f]{32}")
# The context manager of a staging file (LfsStore.staging()): leaving it normally verifies the file.
_Closer = contextlib.AbstractContextManager[tuple[VerifiedWriter, str]]


class UploadUnknown(NotFoundError):
    """No such upload session (never started, finished, cancelled or expired): ``BLOB_UPLOAD_UNKNOWN``."""


class UploadInvalid(ProtocolError):
    """A chunk that does not continue the session (``416`` with the session's ``Range``) or a body shorter than announced."""

    def __init__(self, message: str, *, offset: int, out_of_order: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.out_of_order = out_of_order


class DigestInvalid(CorruptContentError):
    """The uploaded bytes are not the digest the client named (or the digest is malformed): ``DIGEST_INVALID``."""


def parse_digest(text: str | None) -> Digest:
    """The ``?digest=`` of a request; :class:`DigestInvalid` if absent, malformed or not sha256."""
    if not text:
        raise DigestInvalid("the digest parameter is missing")
    try:
        digest = Digest.parse(text)
    except ValueError as exc:
        raise DigestInvalid(f"malformed digest {text[:80]!r}: {exc}") from None
    if digest.algorithm != "sha256":
        raise DigestInvalid(f"digest algorithm {digest.algorithm!r} is not supported (sha256 only)")
    return digest


def parse_range(text: str | None) -> tuple[int, int] | None:
    """``Content-Range: <start>-<end>`` (inclusive; ``bytes `` prefix tolerated), or ``None`` when absent."""
    if text is None or not text.strip():
        return None
    m = _RANGE.fullmatch(text.strip())
    if m is None or int(m.group(2)) < int(m.group(1)):
        raise UploadInvalid(f"malformed Content-Range {text[:80]!r}", offset=0)
    return int(m.group(1)), int(m.group(2))


@dataclass(slots=True)
class _Session:
    id: str
    name: str
    writer: VerifiedWriter
    path: str
    closer: _Closer
    started: float
    touched: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class Uploads:
    """The upload sessions of one ``serve`` process, and the blobs they staged in ``lfs``."""

    def __init__(
        self,
        lfs: LfsStore,
        *,
        expiry: float = DEFAULT_EXPIRY,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
        keep: Callable[[LfsObject, str], bool] | None = None,
    ) -> None:
        self.lfs = lfs
        # Stores a verified staged file (consumed); True if the blob is now one LFS object
        # (staged), False if it went into the tree some other way (chunks committed).
        self.keep = keep or self._upload
        self.expiry = expiry
        self.max_sessions = max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._staged: dict[Digest, LfsObject] = {}

    # -- staged blobs ----------------------------------------------------------------------
    def staged(self, digest: Digest) -> LfsObject | None:
        """The LFS object of a blob this process stored through an upload (``None``: not one of those)."""
        with self._lock:
            return self._staged.get(digest)

    def forget(self, digest: Digest) -> bool:
        """Stop answering for a staged blob (``DELETE`` of the blob); ``True`` if it was one."""
        with self._lock:
            return self._staged.pop(digest, None) is not None

    def store(self, writer: VerifiedWriter, closer: _Closer, path: str, digest: Digest) -> LfsObject:
        """Check the staged file is ``digest`` (its bytes are removed if not), then upload it to LFS."""
        writer.expect(oid=digest.hex, size=writer.count)
        try:
            closer.__exit__(None, None, None)  # VerifiedWriter.commit: size and sha256, or the file goes
        except CorruptContentError as exc:
            raise DigestInvalid(f"uploaded {writer.count} bytes hash to sha256:{writer.digest}, not {digest}") from exc
        obj = LfsObject.of(digest, writer.count)
        try:
            whole = self.keep(obj, path)
        except BaseException:
            forget(path, remove=True)
            raise
        if whole:
            with self._lock:
                self._staged.pop(digest, None)
                self._staged[digest] = obj  # the newest last
                while len(self._staged) > MAX_STAGED:
                    del self._staged[next(iter(self._staged))]
        log.debug("staged %s (%d bytes) in %s", digest, obj.size, self.lfs.label)
        return obj

    def _upload(self, obj: LfsObject, path: str) -> bool:
        self.lfs.upload([(obj, path)])
        return True

    def monolithic(self, digest: Digest, body: Reader, length: int | None) -> LfsObject:
        """``POST ?digest=`` (or ``PUT`` without a session): the whole blob in one request."""
        closer = self.lfs.staging()
        writer, path = closer.__enter__()
        try:
            _pump(body, writer, length)
        except BaseException as exc:
            closer.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self.store(writer, closer, path, digest)

    # -- sessions --------------------------------------------------------------------------
    def start(self, name: str) -> str:
        """Open a session for ``name``; its id. :class:`RetriableError` (429) when too many are open."""
        self.reap()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise RetriableError(f"{len(self._sessions)} uploads in progress; try again later", status=429, retry_after=5.0)
        closer = self.lfs.staging()
        writer, path = closer.__enter__()
        now = self.clock()
        session = _Session(uuid.uuid4().hex, name, writer, path, closer, now, now)
        with self._lock:
            self._sessions[session.id] = session
        return session.id

    @contextlib.contextmanager
    def _use(self, name: str, session_id: str) -> Iterator[_Session]:
        if not _UUID.fullmatch(session_id):
            raise UploadUnknown(f"no upload {session_id[:80]!r}")
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.name != name:
            raise UploadUnknown(f"no upload {session_id} for {name}")
        with session.lock:
            if session.done:
                raise UploadUnknown(f"upload {session_id} is finished")
            session.touched = self.clock()
            yield session
            session.touched = self.clock()

    def offset(self, name: str, session_id: str) -> int:
        """Bytes the session holds (``GET`` on the session)."""
        with self._use(name, session_id) as session:
            return session.writer.count

    def append(self, name: str, session_id: str, body: Reader, length: int | None, content_range: tuple[int, int] | None) -> int:
        """``PATCH``: append ``body`` (``length`` bytes, or to its end); the new offset.

        With ``Content-Range`` the chunk must start at the session's offset and be as long as
        the range says (:class:`UploadInvalid` otherwise, nothing appended when it starts
        elsewhere); without one (docker's streamed upload) the whole body is appended.
        """
        with self._use(name, session_id) as session:
            self._append(session, body, length, content_range)
            return session.writer.count

    def _append(self, session: _Session, body: Reader, length: int | None, content_range: tuple[int, int] | None) -> None:
        writer = session.writer
        start = writer.count
        if content_range is not None:
            first, last = content_range
            if first != start:
                raise UploadInvalid(f"chunk starts at {first}, the upload has {start} bytes", offset=start, out_of_order=True)
            want = last - first + 1
            if length is not None and length != want:
                raise UploadInvalid(f"Content-Range {first}-{last} is {want} bytes, Content-Length {length}", offset=start)
            length = want
        _pump(body, writer, length)  # a body cut short keeps what arrived: the client asks the offset and goes on

    def finish(
        self, name: str, session_id: str, digest: Digest, body: Reader, length: int | None, content_range: tuple[int, int] | None
    ) -> LfsObject:
        """``PUT ?digest=``: append the last chunk (if any), check the whole blob is ``digest``, store it in LFS.

        A blob that is not ``digest`` is dropped with its session (:class:`DigestInvalid`).
        """
        with self._use(name, session_id) as session:
            if length != 0 or content_range is not None:
                self._append(session, body, length, content_range)
            session.done = True
            with self._lock:
                self._sessions.pop(session.id, None)
            return self.store(session.writer, session.closer, session.path, digest)

    def cancel(self, name: str, session_id: str) -> None:
        """``DELETE`` on the session: drop it and its bytes."""
        with self._use(name, session_id) as session:
            self._drop(session)

    def _drop(self, session: _Session) -> None:
        session.done = True
        with self._lock:
            self._sessions.pop(session.id, None)
        exc = UploadUnknown("upload cancelled")
        with contextlib.suppress(Exception):
            session.closer.__exit__(UploadUnknown, exc, None)  # removes the staging file

    def reap(self) -> int:
        """Drop sessions idle for longer than ``expiry``; how many were dropped."""
        now = self.clock()
        with self._lock:
            old = [s for s in self._sessions.values() if now - s.touched > self.expiry]
        dropped = 0
        for session in old:
            if session.lock.acquire(blocking=False):  # one in use is not idle
                try:
                    if not session.done:
                        self._drop(session)
                        dropped += 1
                finally:
                    session.lock.release()
        if dropped:
            log.info("dropped %d upload session(s) idle for more than %.0f s", dropped, self.expiry)
        return dropped

    def close(self) -> None:
        """Drop every session (the server is stopping)."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            with session.lock:
                if not session.done:
                    self._drop(session)


def _pump(body: Reader, writer: VerifiedWriter, length: int | None) -> None:
    """Copy ``length`` bytes (or all) of ``body`` into ``writer``, one buffer at a time."""
    left = length
    while left is None or left > 0:
        chunk = body.read(CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            break
        writer.write(chunk)
        if left is not None:
            left -= len(chunk)
    if left:
        raise UploadInvalid(f"the request body ended {left} bytes short of its length", offset=writer.count)
