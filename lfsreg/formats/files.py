"""Read-only file access to a directory or a tar archive, with path-safety checks.

Image formats are read through :class:`Files` so the same parser serves a directory and a
tarball (an OCI layout and an OCI archive; a Docker 25 ``docker save`` is both). Tar members
are opened by offset on a fresh file handle, so several threads can read layers at once, and
nothing is ever extracted.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..compression import decompressing_reader, sniff
from ..errors import BlobNotFound, InvalidImageError

MAX_SMALL = 64 << 20  # metadata files (manifests, configs, index.json) larger than this are refused


class Files(Protocol):
    """A read-only tree of files addressed by relative POSIX paths."""

    label: str

    def exists(self, path: str) -> bool:
        """True if ``path`` is a regular file (links followed within the tree)."""
        ...

    def size(self, path: str) -> int:
        """Size in bytes; :class:`BlobNotFound` if absent."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A new read handle (safe to use from several threads); :class:`BlobNotFound` if absent."""
        ...

    def read_small(self, path: str) -> bytes:
        """A metadata file, whole; refuses files over :data:`MAX_SMALL`."""
        ...

    def close(self) -> None:
        """Release temporary copies."""
        ...


def safe_path(path: str, label: str, *, allow_dotdot: bool = False) -> str:
    """Normalise a relative path; refuse absolute paths and any that could leave the root.

    Member names may not contain a ``..`` component at all; link targets (``allow_dotdot``)
    may, as long as the joined path stays inside.
    """
    parts = path.split("/")
    if path.startswith("/") or "\x00" in path or (not allow_dotdot and ".." in parts):
        raise InvalidImageError(f"{label}: unsafe path {path!r} (absolute or with '..')")
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        raise InvalidImageError(f"{label}: unsafe path {path!r} (outside the archive)")
    return norm


class _SmallReads:
    """``read_small`` for a :class:`Files` that has ``label``, ``size`` and ``open``."""

    label: str

    def size(self, path: str) -> int:
        raise NotImplementedError

    def open(self, path: str) -> BinaryIO:
        raise NotImplementedError

    def read_small(self, path: str) -> bytes:
        """Read a metadata file whole (refusing absurd sizes)."""
        if self.size(path) > MAX_SMALL:
            raise InvalidImageError(f"{self.label}: {path} is too large for a metadata file")
        with self.open(path) as f:
            return f.read()


class DirFiles(_SmallReads):
    """Files in a directory: regular files only, and links may not leave it.

    A FIFO, device or socket would block a reader forever or yield endless bytes, and a
    symlink out of the directory would read files the layout does not hold: both are refused
    as an invalid image.
    """

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise InvalidImageError(f"{root}: not a directory")
        self.root = os.path.abspath(root)
        self._real_root = os.path.realpath(root)
        self.label = root

    def _regular(self, path: str) -> str | None:
        """The real path of ``path`` if it is a regular file inside the directory; ``None`` if absent."""
        real = os.path.realpath(os.path.join(self.root, safe_path(path, self.label)))
        if os.path.commonpath([real, self._real_root]) != self._real_root:
            raise InvalidImageError(f"{self.label}: {path} is a link out of the directory")
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:  # a link loop, a permission: not something the layout holds
            raise InvalidImageError(f"{self.label}: cannot read {path} ({exc.strerror})") from exc
        if not stat.S_ISREG(mode):
            raise InvalidImageError(f"{self.label}: {path} is not a regular file")
        return real

    def _existing(self, path: str) -> str:
        real = self._regular(path)
        if real is None:
            raise BlobNotFound(f"{self.label}: missing {path}")
        return real

    def exists(self, path: str) -> bool:
        """True if ``path`` is a regular file; :class:`InvalidImageError` if it is something else."""
        return self._regular(path) is not None

    def size(self, path: str) -> int:
        """Size of ``path`` in bytes."""
        return os.path.getsize(self._existing(path))

    def open(self, path: str) -> BinaryIO:
        """Open ``path`` for reading; non-blocking, so a FIFO swapped in after the check is refused, not waited on."""
        try:
            fd = os.open(self._existing(path), os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise BlobNotFound(f"{self.label}: missing {path}") from exc
        except OSError as exc:
            raise InvalidImageError(f"{self.label}: cannot read {path} ({exc.strerror})") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was checked
            os.close(fd)
            raise InvalidImageError(f"{self.label}: {path} is not a regular file")
        return os.fdopen(fd, "rb")

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class _Member:
    offset: int
    size: int


class _Region:
    """A read-only window [offset, offset+size) of a file, with its own handle."""

    def __init__(self, path: str, member: _Member) -> None:
        self._f = open(path, "rb")
        self._f.seek(member.offset)
        self._left = member.size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        if not data:
            raise InvalidImageError("tar member is truncated")
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Region:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TarFiles(_SmallReads):
    """Files inside a tar archive (plain, gzip or zstd; compressed ones are spooled to disk).

    Every member name is checked: an absolute path or one with ``..`` makes the whole archive
    invalid. Symlinks and hard links are followed within the archive only.
    """

    def __init__(self, path: str, *, spool_dir: str | None = None) -> None:
        self.label = path
        self._spooled: str | None = None
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as exc:
            raise InvalidImageError(f"{path}: cannot read ({exc.strerror})") from exc
        algorithm = sniff(head)
        if algorithm != "none":
            self._spooled = self._spool(path, algorithm, spool_dir)
        self._path = self._spooled or path
        self._members: dict[str, _Member] = {}
        self._links: dict[str, str] = {}
        try:
            self._index()
        except BaseException:
            self.close()
            raise

    def _spool(self, path: str, algorithm: str, spool_dir: str | None) -> str:
        fd, tmp = tempfile.mkstemp(prefix="lfsreg-spool-", suffix=".tar", dir=spool_dir)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(decompressing_reader(algorithm, src), dst, 1 << 20)
        except (OSError, EOFError, ValueError) as exc:
            os.unlink(tmp)
            raise InvalidImageError(f"{path}: corrupt {algorithm} compression ({exc})") from exc
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def _index(self) -> None:
        total = os.path.getsize(self._path)
        try:
            with tarfile.open(self._path, "r:") as tar:
                for info in tar:
                    name = safe_path(info.name, self.label)
                    if info.isfile():
                        if info.offset_data + info.size > total:
                            raise InvalidImageError(f"{self.label}: truncated (member {info.name} is cut short)")
                        self._members[name] = _Member(info.offset_data, info.size)
                    elif info.issym():
                        target = posixpath.join(posixpath.dirname(name), info.linkname)
                        self._links[name] = safe_path(target, self.label, allow_dotdot=True)
                    elif info.islnk():
                        self._links[name] = safe_path(info.linkname, self.label, allow_dotdot=True)
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidImageError(f"{self.label}: not a valid tar archive ({exc})") from exc

    def _resolve(self, path: str) -> _Member | None:
        name = safe_path(path, self.label)
        for _ in range(16):
            if name in self._members:
                return self._members[name]
            if name not in self._links:
                return None
            name = self._links[name]
        return None

    def exists(self, path: str) -> bool:
        """True if ``path`` names a regular file (after following links)."""
        return self._resolve(path) is not None

    def size(self, path: str) -> int:
        """Size of the member in bytes."""
        member = self._resolve(path)
        if member is None:
            raise BlobNotFound(f"{self.label}: missing {path}")
        return member.size

    def open(self, path: str) -> BinaryIO:
        """Open a member for reading on a fresh handle (thread-safe)."""
        member = self._resolve(path)
        if member is None:
            raise BlobNotFound(f"{self.label}: missing {path}")
        return _Region(self._path, member)  # type: ignore[return-value]

    def close(self) -> None:
        """Remove the spooled copy of a compressed archive."""
        if self._spooled:
            os.unlink(self._spooled)
            self._spooled = None


def open_files(path: str, *, spool_dir: str | None = None) -> Files:
    """Open a directory or a tar archive as :class:`Files`."""
    if os.path.isdir(path):
        return DirFiles(path)
    if not os.path.exists(path):
        raise InvalidImageError(f"{path}: no such file or directory")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise InvalidImageError(f"{path}: not a regular file or directory (an archive must be read more than once)")
    return TarFiles(path, spool_dir=spool_dir)
