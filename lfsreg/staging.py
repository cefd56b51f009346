"""Temporary files that become content-addressed files, and the clean-up of abandoned ones.

Two things every store of objects needs:

* :class:`VerifiedWriter`, the one routine that hashes bytes while writing them to a temporary
  file, compares size and sha256 with what they claim to be, and only then renames the file
  into place atomically (used for LFS downloads over HTTP and SSH, ``file://`` copies, and the
  object cache). A reader never sees a partial or corrupt object.
* :func:`staged_file`, a temporary file named after the process that owns it
  (``lfsreg-<pid>.<host>-<random>``), and :func:`sweep_stale`, which removes files whose owner
  is gone (or that are very old) when the next run starts: a push killed with SIGKILL cannot
  clean up after itself. :func:`discard_own_staging` removes this process's staged files at
  once and makes further writes to them fail, for a SIGTERM handler.
"""

from __future__ import annotations

import contextlib
import errno
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

from .digest import CHUNK
from .errors import CorruptContentError, LocalStorageError

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


class _StagedWriter:
    """A staged file's handle that refuses writes once the process is shutting down."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self._f = f
        self._path = path

    def write(self, data: bytes) -> int:
        """Write ``data`` (:class:`LocalStorageError` after :func:`discard_own_staging`, or on a full disk)."""
        if _closed:
            raise LocalStorageError("lfsreg is shutting down: staging stopped")
        with writing(self._path):
            return self._f.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)


@contextlib.contextmanager
def staged_file(directory: str) -> Iterator[tuple[BinaryIO, str]]:
    """A new temporary file in ``directory`` as ``(handle, path)``; removed if the block raises.

    The caller moves it into place (or consumes it) after the block; on success it stays,
    until the process ends: :func:`discard_own_staging` removes the ones still there. The
    first call for a directory in a process sweeps it (:func:`sweep_stale`).
    """
    path = temp_path(directory)
    try:
        with writing(path), open(path, "wb") as f:  # the close flushes: it may meet a full disk too
            yield _StagedWriter(f, path), path  # type: ignore[misc]
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
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.chmod(path, 0o644)
        os.replace(path, target)
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


class VerifiedWriter:
    """Writes an object's bytes to ``path`` while hashing them; :meth:`commit` renames it to ``target``.

    Args:
        path: the temporary file (same file system as ``target``).
        target: where the object goes once verified.
        oid: its expected sha256 (hex).
        size: its expected size.
        what: names the object and its source in error messages.
        resume: keep the bytes already in ``path`` (re-hashed) and append; otherwise start empty.

    :meth:`write` refuses bytes past ``size``; :meth:`commit` raises
    :class:`CorruptContentError` (and deletes the file) unless size and hash match. Used as a
    context manager, an exception removes the file unless ``resume`` (a partial download is
    kept for the next attempt); :meth:`discard` always removes it.
    """

    def __init__(self, path: str, target: str, oid: str, size: int, what: str, *, resume: bool = False) -> None:
        self.path = path
        self.target = target
        self.oid = oid
        self.size = size
        self.what = what
        self.resume = resume
        self._hash = hashlib.sha256()
        self.offset = 0
        with writing(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if resume and os.path.exists(path):
                with open(path, "rb") as f:
                    while self.offset <= size and (chunk := f.read(CHUNK)):
                        self._hash.update(chunk)
                        self.offset += len(chunk)
                if self.offset >= size:  # nothing to resume, or more than the whole: start over
                    self.restart()
            self._file: BinaryIO = open(path, "ab" if self.offset else "wb")

    @property
    def count(self) -> int:
        """Bytes in the file so far."""
        return self.offset

    def restart(self) -> None:
        """Drop what is in the file and start from zero (the server ignored a ``Range``)."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = open(self.path, "wb")
        else:
            with open(self.path, "wb"):
                pass
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; :class:`CorruptContentError` if it goes past ``size``."""
        if self.offset + len(data) > self.size:
            raise CorruptContentError(f"{self.what}: more than the {self.size} bytes announced")
        with writing(self.path):
            self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def copy_from(self, src: Reader, progress: Callable[[int], None] | None = None) -> None:
        """Write everything ``src`` yields (calling ``progress`` with each chunk's size)."""
        while chunk := src.read(CHUNK):
            self.write(chunk)
            if progress is not None:
                progress(len(chunk))

    def close(self) -> None:
        """Close the file, keeping it (for a later resume)."""
        with writing(self.path):
            self._file.close()

    def discard(self) -> None:
        """Close and delete the file (bytes that a full disk refused are dropped with it)."""
        with contextlib.suppress(OSError):
            self._file.close()
        forget(self.path, remove=True)

    def commit(self) -> None:
        """Verify size and sha256, then rename the file to ``target`` atomically."""
        try:
            with writing(self.path):
                self._file.close()  # flushes: a full disk may refuse the last bytes here
        except BaseException:
            self.discard()
            raise
        got = self._hash.hexdigest()
        if self.offset != self.size or got != self.oid:
            forget(self.path, remove=True)
            raise CorruptContentError(
                f"{self.what}: got {self.offset} bytes hashing to sha256:{got}, expected {self.size} bytes of sha256:{self.oid}"
            )
        place(self.path, self.target)

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
