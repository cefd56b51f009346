"""Read-only bulk reads of a repository's objects, for walks over many of them (``du``).

:class:`RawObjects` reads objects straight from the packs (:mod:`lfsreg.git.packs`; then
loose files), without building dulwich objects: about 10x faster per object than
:class:`lfsreg.git.store.Snapshot`, which matters for tens of thousands of tags and every
tree of a long history. Nothing is
cached: the caller keeps what it needs (:mod:`lfsreg.ops.walk` keeps a memo).
"""

from __future__ import annotations

import binascii
import contextlib
import os
import zlib
from binascii import unhexlify
from hashlib import sha1

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import Commit, RawObjectID, parse_tree, sha_to_hex

from ..errors import BlobNotFound, CorruptContentError, NotFoundError
from .objects import ObjectFiles
from .packs import PackReader, open_packs
from .store import GitStore, Snapshot

DIR_MODE = 0o040000
_TREE, _BLOB = 2, 3
#: Objects read through dulwich before the packs' indexes are loaded: loading one costs about
#: what 2,000 reads through dulwich do (0.1 s for 200,000 objects), and most walks that read
#: this few objects read nothing more.
_FIRST_READS = 256
_FSCK = "run `git fsck` in the repository"
_HEADERS = {_TREE: b"tree ", _BLOB: b"blob "}


def _name(sha: bytes, what: str) -> str:
    return f"git object {sha.decode()}" + (f" ({what})" if what else "")


class RawObjects:
    """Objects of one repository as ``(type, bytes)``; missing or damaged ones raise lfsreg errors.

    Packed objects are read by :mod:`lfsreg.git.packs` (the packs there after the first
    :data:`_FIRST_READS` reads, which go through dulwich); the rest (loose objects, packs
    written since) through dulwich. ``check``: hash every object read against its id, as
    dulwich's reads of whole objects do (a walk that vouches for the registry, ``verify``,
    wants it; ``du`` does not).
    """

    def __init__(self, objects: ObjectFiles, *, check: bool = False) -> None:
        self._objects = objects
        self._packs: list[PackReader] = []
        self._check = check
        self._before_packs = _FIRST_READS  # reads left through dulwich before the packs' indexes are loaded

    def _open_packs(self) -> None:
        self._packs = open_packs(self._objects.path)
        self._before_packs = -1

    def close(self) -> None:
        """Release the packs' maps."""
        for pack in self._packs:
            pack.close()
        self._packs = []

    def _lookup(self, binary: bytes) -> tuple[int, bytes] | None:
        """A delta's base, wherever it is."""
        for pack in self._packs:
            offset = pack.offset(binary)
            if offset is not None:
                return pack.read(offset, self._lookup)
        with contextlib.suppress(KeyError):
            return self._objects.get_raw(sha_to_hex(RawObjectID(binary)))
        return None

    def raw(self, sha: bytes, kind: int, what: str = "") -> bytes:
        """The content of object ``sha`` (hex), which must be of type ``kind`` (2 tree, 3 blob)."""
        try:
            binary = unhexlify(sha)
            if self._before_packs >= 0:  # a walk that reads few objects (a memo holds the rest) loads no index
                self._before_packs -= 1
                if self._before_packs < 0:
                    self._open_packs()
            for pack in self._packs:
                offset = pack.offset(binary)
                if offset is not None:
                    kind_found, data = pack.read(offset, self._lookup)
                    break
            else:
                kind_found, data = self._objects.get_raw(sha)  # loose, or a pack that appeared since
        except KeyError:
            raise BlobNotFound(f"{_name(sha, what)} is missing", hint=_FSCK) from None
        except (ValueError, binascii.Error, ChecksumMismatch, ObjectFormatException, zlib.error, CorruptContentError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorruptContentError(f"{_name(sha, what)} is damaged: {text}", hint=_FSCK) from None
        if kind_found != kind:
            raise NotFoundError(f"{_name(sha, what)} is not a {'tree' if kind == _TREE else 'blob'}")
        if self._check and sha1(b"%s%d\0%s" % (_HEADERS[kind], len(data), data)).digest() != binary:
            raise CorruptContentError(f"{_name(sha, what)} is damaged: its content does not hash to its id", hint=_FSCK)
        return data

    def tree(self, sha: bytes, what: str = "") -> list[tuple[str, bool, bytes]]:
        """Entries of tree ``sha``: ``(name, is_dir, sha)``."""
        return [(name.decode("utf-8", "replace"), mode == DIR_MODE, s) for name, mode, s in self.entries(sha, what)]

    def entries(self, sha: bytes, what: str = "") -> list[tuple[bytes, int, bytes]]:
        """Entries of tree ``sha`` as git stores them: ``(name, mode, sha)``."""
        data = self.raw(sha, _TREE, what)
        try:
            return [(bytes(name), mode, bytes(s)) for name, mode, s in parse_tree(data, 20)]
        except (ObjectFormatException, ValueError) as exc:
            raise CorruptContentError(f"git object {sha.decode()} ({what}) is a damaged tree: {exc}") from None

    def blob(self, sha: bytes, what: str = "") -> bytes:
        """Content of blob ``sha``."""
        return self.raw(sha, _BLOB, what)

    def child(self, tree: bytes, path: str) -> bytes | None:
        """The id of the directory at ``path`` below ``tree``, or ``None``."""
        sha: bytes | None = tree
        for part in (p for p in path.split("/") if p):
            assert sha is not None
            sha = next((s for n, d, s in self.tree(sha) if d and n == part), None)
            if sha is None:
                return None
        return sha


class BulkSnapshot(Snapshot):
    """:class:`Snapshot` of the same commit, its objects read through :class:`RawObjects` (checked).

    For reads of a whole registry (``verify``): every tag, manifest and pointer. Call
    :meth:`close` (or use it as a context manager) to release the packs' maps.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot.objects, None)
        self.commit, self.root = snapshot.commit, snapshot.root
        if self.root is not None:
            snapshot.objects.prefetch_whole(self.root)  # a mirror fetched in part: the whole tree in one exchange
        self._raw = RawObjects(snapshot.objects, check=True)

    def __enter__(self) -> BulkSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the packs' maps."""
        self._raw.close()

    def _read_tree(self, sha: bytes) -> dict[bytes, tuple[int, bytes]]:
        return {name: (mode, s) for name, mode, s in self._raw.entries(sha)}

    def _read_blob(self, sha: bytes, path: str | None) -> bytes:
        return self._raw.blob(sha, path or "")

    def blob(self, sha: bytes, path: str | None = None) -> bytes:
        """As :meth:`Snapshot.blob`, uncached: a read is cheap here, and a whole registry's blobs would all stay."""
        return self._raw.blob(sha, path or "")


def read_commit(git: GitStore, sha: bytes) -> tuple[bytes, tuple[str, ...]]:
    """Root tree id and parent ids of the commit ``sha`` (hex); :class:`BlobNotFound` if missing."""
    try:
        commit = git.objects.get(sha)
    except KeyError:
        raise BlobNotFound(f"git object {sha.decode()} (a commit) is missing", hint=_FSCK) from None
    if not isinstance(commit, Commit):
        raise NotFoundError(f"git object {sha.decode()} is not a commit")
    return bytes(commit.tree), tuple(bytes(p).decode() for p in commit.parents)


def directory_bytes(path: str) -> int:
    """Bytes of the files under ``path`` (apparent sizes; 0 if it does not exist)."""
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


__all__ = ["BulkSnapshot", "RawObjects", "directory_bytes", "read_commit"]
