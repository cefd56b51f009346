"""Temporary files that become content-addressed files, and the clean-up of abandoned ones.

Two things every store of objects needs:

* :class:`VerifiedWriter`, the one routine that hashes bytes while writing them to a temporary
  file, compares size and sha256 with what they claim to be, and only then renames the file
  into place atomically (used for LFS downloads over HTTP and SSH, ``file://`` copies, the
  object cache, and staged layers, the ``docker save`` ingest's included). A reader never sees
  a partial or corrupt object.
* :func:`staged_file`, a temporary file named after the process that owns it
  (``lfsreg-<pid>.<host>-<random>``), and :func:`sweep_stale`, which removes files whose owner
  is gone (or that are very old) when the next run starts: a push killed with SIGKILL cannot
  clean up after itself. :func:`discard_own_staging` removes this process's staged files at
  once and makes further writes to them fail, for a SIGTERM handler.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from .digest import CHUNK, Digest
from .errors import ConcurrentUpdateError, CorruptContentError, LocalStorageError

log = logging.getLogger(__name__)
PREFIX = "lfsreg-"
#: Staged files older than this are removed even if their owner seems alive (pid reuse, another host).
STALE_AGE = 7 * 24 * 3600.0
_OWNED = re.compile(r"lfsreg-(\d+)\.([0-9a-f]{7})-")
#: Names this machine in staged files' names: a cache shared between hosts (NFS, a CI volume)
#: must not lose a live process's files because its pid means nothing here.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:7]

_live_lock = threading.Lock()
_live: set[str] = set()  # staged files of this process that still exist
_closed = False  # set by discard_own_staging: no new staging after that


#: The errors of a disk that cannot take more bytes (full, over quota, file too large, read-only).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def storage_error(exc: OSError, path: str) -> LocalStorageError:
    """A :class:`LocalStorageError` for a failed write of ``path`` (full disk, read-only, quota)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = "free some space and run the command again" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else None
    return LocalStorageError(f"{path}: cannot write: {reason}", hint=hint)


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn a disk's refusal (:data:`DISK_ERRORS`) inside the block into :func:`storage_error` naming ``path``.

    Other errors pass unchanged: a read error of the source is not the disk's fault.
    """
    try:
        yield
    except LocalStorageError:
        raise
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        raise storage_error(exc, path) from None


class Reader(Protocol):
    """Anything with ``read(n)``."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


def owner_tag(pid: int) -> str:
    """The owner part of a staged file's name: ``<pid>.<host>``."""
    return f"{pid}.{HOST}"


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def sweep_stale(directory: str, *, now: float | None = None) -> int:
    """Remove abandoned temporary files in ``directory``; return how many were removed.

    A file is abandoned when it is named ``lfsreg-<pid>.<host>-…`` for this host and no process
    ``pid`` runs here, or when it is older than :data:`STALE_AGE` (names without an owner,
    another host's files, or a pid reused since). Files of live processes are left alone.
    """
    now = time.time() if now is None else now
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(directory, name)
        m = _OWNED.match(name)
        try:
            old = now - os.lstat(path).st_mtime > STALE_AGE
        except OSError:
            continue
        if old or (m is not None and m.group(2) == HOST and not _owner_alive(int(m.group(1)))):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
    if removed:
        log.info("removed %d abandoned staging file(s) in %s", removed, directory)
    return removed


_swept: set[str] = set()


def sweep_once(directory: str) -> None:
    """:func:`sweep_stale` ``directory``, the first time this process asks (stores call it when created)."""
    if directory in _swept:
        return
    _swept.add(directory)
    sweep_stale(directory)


@contextlib.contextmanager
def staged_file(directory: str, what: str = "staged file") -> Iterator[tuple[VerifiedWriter, str]]:
    """A new temporary file in ``directory`` as ``(writer, path)``; removed if the block raises.

    The writer is a :class:`VerifiedWriter` without a target: it hashes and counts what is
    written (``digest``, ``count``), and checks what the caller tells it to expect
    (:meth:`VerifiedWriter.expect`) when the block ends. The caller moves the file into place
    (or consumes it) after the block; on success it stays, until the process ends:
    :func:`discard_own_staging` removes the ones still there. The first call for a directory in
    a process sweeps it (:func:`sweep_stale`).
    """
    path = temp_path(directory)
    try:
        writer = VerifiedWriter(path, None, None, None, what)
        with writer:
            yield writer, path
            writer.commit()
    except BaseException:
        forget(path, remove=True)
        raise


def temp_path(directory: str) -> str:
    """A new empty temporary file in ``directory``, tracked as :func:`staged_file` files are."""
    if _closed:
        raise LocalStorageError("lfsreg is shutting down: no new staging")
    with writing(directory):
        os.makedirs(directory, exist_ok=True)
        sweep_once(directory)
        fd, path = tempfile.mkstemp(prefix=f"{PREFIX}{owner_tag(os.getpid())}-", dir=directory)
    os.close(fd)
    with _live_lock:
        _live.add(path)
    return path


def forget(path: str, *, remove: bool = False) -> None:
    """Stop tracking a staged file (it was renamed into place); ``remove`` also deletes it."""
    with _live_lock:
        _live.discard(path)
    if remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def discard_own_staging() -> int:
    """Remove every staged file of this process that still exists, and refuse new staging.

    Meant for a SIGTERM handler (it takes no locks a worker could hold for long). Returns how
    many files were removed.
    """
    global _closed
    _closed = True
    with _live_lock:
        paths = list(_live)
        _live.clear()
    removed = 0
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed += 1
    return removed


def place(path: str, target: str) -> None:
    """Rename a complete file into place (readable by all, like git-lfs objects)."""
    with writing(target):
        os.chmod(path, 0o644)
        for attempt in (1, 2):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.replace(path, target)
                break
            except FileNotFoundError:  # `lfsreg gc` removed the empty directory just now
                if attempt == 2 or not os.path.exists(path):
                    raise
    forget(path)


def file_sha256(path: str) -> tuple[str, int]:
    """The sha256 hex digest and size of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _open_owned(path: str) -> BinaryIO:
    """Open ``path`` for reading and writing (created if absent) as its only writer.

    The advisory lock dies with the process. A file renamed or removed by its previous owner
    between our ``open`` and our lock is not the one at ``path`` any more: open again.
    """
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConcurrentUpdateError(f"{path}: another process is writing it") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return os.fdopen(fd, "r+b")
        os.close(fd)
    raise ConcurrentUpdateError(f"{path}: replaced by other processes while it was opened")


def _open_empty(path: str) -> BinaryIO:
    """Open ``path`` to write from byte 0; truncated only if it holds bytes (it is nearly always new and empty).

    Why not ``open(path, "wb")``: ``O_TRUNC`` (even to the size it has) marks the file on ext4
    (``auto_da_alloc``) as one replaced in place, and its close then flushes every page to disk.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class HashedSource(Protocol):
    """A reader that hashes and counts what it yields (:class:`lfsreg.digest.HashingReader`)."""

    @property
    def count(self) -> int: ...  # noqa: D102

    @property
    def digest(self) -> Digest: ...  # noqa: D102


class VerifiedWriter:
    """Writes an object's bytes to ``path`` while hashing them; :meth:`commit` checks them and renames it to ``target``.

    The one routine by which lfsreg writes content that must be what it claims: LFS downloads
    over HTTP and SSH, ``file://`` copies, the object cache, and every staged layer (the
    ``docker save`` ingest included), through :func:`staged_file`.

    Args:
        path: the temporary file (same file system as ``target``).
        target: where the object goes once verified; ``None``: it stays at ``path``, staged.
        oid: its expected sha256 (hex); ``None``: named by its content (see ``digest``).
        size: its expected size; ``None``: not known in advance.
        what: names the object and its source in error messages.
        resume: keep the bytes already in ``path`` (re-hashed) and append; otherwise start empty.

    :meth:`write` refuses bytes past ``size``; :meth:`commit` raises
    :class:`CorruptContentError` (and deletes the file) unless size and hash match. Used as a
    context manager, an exception removes the file unless ``resume`` (a partial download is
    kept for the next attempt); :meth:`discard` always removes it. Writes fail with
    :class:`LocalStorageError` naming ``path`` on a full disk, and once the process is
    shutting down (:func:`discard_own_staging`).

    With ``resume`` the file (a partial download that several processes sharing a cache may
    want) has one owner at a time: the writer holds an advisory lock on it from opening to
    its rename or close, and raises :class:`ConcurrentUpdateError` at once if another process
    holds it (the caller then writes a file of its own). The rename happens under the lock,
    so the next owner never appends to a file that has become the object.
    """

    def __init__(self, path: str, target: str | None, oid: str | None, size: int | None, what: str, *, resume: bool = False) -> None:
        self.path = path
        self.target = target
        self.oid = oid
        self.size = size
        self.what = what
        self.resume = resume
        self._hash = hashlib.sha256()
        self.offset = 0
        self._source: HashedSource | None = None
        with writing(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not resume:
                self._file: BinaryIO = _open_empty(path)
                return
            assert size is not None, "a resumed download knows its size"
            self._file = _open_owned(path)
            while self.offset <= size and (chunk := self._file.read(CHUNK)):
                self._hash.update(chunk)
                self.offset += len(chunk)
            if self.offset >= size:  # nothing to resume, or more than the whole: start over
                self.restart()
            self._file.seek(0, os.SEEK_END)

    @property
    def count(self) -> int:
        """Bytes in the file so far."""
        return self.offset

    def restart(self) -> None:
        """Drop what is in the file and start from zero (the server ignored a ``Range``)."""
        self._file.seek(0)
        self._file.truncate()  # the same open file: an owned part stays locked
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; :class:`CorruptContentError` if it goes past ``size``."""
        if _closed:
            raise LocalStorageError("lfsreg is shutting down: staging stopped")
        if self.size is not None and self.offset + len(data) > self.size:
            raise CorruptContentError(f"{self.what}: more than the {self.size} bytes announced")
        try:  # what `writing` does, without a context manager per piece (a download's may be 4 KiB)
            self._file.write(data)
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                raise
            raise storage_error(exc, self.path) from None
        if self._source is None:
            self._hash.update(data)
        self.offset += len(data)

    def hashed_by(self, source: HashedSource) -> None:
        """Take ``source``'s hash for this file's: the caller writes exactly the bytes it reads from it.

        Each byte is then hashed once, not twice. :meth:`commit` checks the source's digest, and
        that the file got every byte the source gave. Call it before the first write.
        """
        assert self.offset == 0 and not self.resume, "hashed_by comes before any write, on a fresh file"
        self._source = source

    def copy_from(self, src: Reader, progress: Callable[[int], None] | None = None) -> None:
        """Write everything ``src`` yields (calling ``progress`` with each chunk's size)."""
        while chunk := src.read(CHUNK):
            self.write(chunk)
            if progress is not None:
                progress(len(chunk))

    def flush(self) -> None:
        """Push buffered bytes to the file (a full disk says so here, naming the file)."""
        with writing(self.path):
            self._file.flush()

    @property
    def digest(self) -> str:
        """The sha256 (hex) of the bytes written so far."""
        return self._source.digest.hex if self._source is not None else self._hash.hexdigest()

    def expect(self, oid: str | None = None, size: int | None = None, what: str | None = None) -> None:
        """What :meth:`commit` must find (and how errors name it), learnt after the writer was made."""
        if what is not None:
            self.what = what
        if oid is not None:
            self.oid = oid
        if size is not None:
            self.size = size

    def close(self) -> None:
        """Close the file, keeping it (for a later resume)."""
        with writing(self.path):
            self._file.close()

    def discard(self) -> None:
        """Delete the file, then close it (an owned part is removed before its lock goes)."""
        forget(self.path, remove=True)
        with contextlib.suppress(OSError):  # bytes that a full disk refused are dropped with it
            self._file.close()

    def commit(self) -> None:
        """Verify size and sha256, then rename the file to ``target`` atomically (then close it)."""
        try:
            with writing(self.path):
                self._file.flush()  # a full disk may refuse the last bytes here
        except BaseException:
            self.discard()
            raise
        got = self.digest
        if self._source is not None and self._source.count != self.offset:
            self.discard()
            raise CorruptContentError(f"{self.what}: {self.offset} bytes written of the {self._source.count} read")
        if (self.size is not None and self.offset != self.size) or (self.oid is not None and got != self.oid):
            self.discard()
            expected = f"{self.size if self.size is not None else 'any number of'} bytes of sha256:{self.oid or 'any'}"
            raise CorruptContentError(f"{self.what}: got {self.offset} bytes hashing to sha256:{got}, expected {expected}")
        if self.target is None:  # staged: the file stays where it is, complete and checked
            self.close()
            return
        try:
            place(self.path, self.target)
        except BaseException:
            self.discard()
            raise
        self._file.close()

    def __enter__(self) -> VerifiedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        if self.resume:
            try:
                self.close()
            except OSError:  # the tail a full disk refused: the kept part may be short, resume re-hashes it
                with contextlib.suppress(OSError):
                    self._file.close()
        else:
            self.discard()
