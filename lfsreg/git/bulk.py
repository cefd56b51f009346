"""Read-only bulk reads of a repository's objects, for walks over many of them (``du``).

:class:`RawObjects` reads objects straight from the packs (then loose files), without
building dulwich objects: about 4x faster per object than :class:`lfsreg.git.store.Snapshot`,
which matters for tens of thousands of tags and every tree of a long history. Nothing is
cached: the caller keeps what it needs (:mod:`lfsreg.ops.walk` keeps a memo).
"""

from __future__ import annotations

import os
import zlib

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import Commit, ObjectID, hex_to_sha, parse_tree

from ..errors import BlobNotFound, CorruptContentError, NotFoundError
from .store import GitStore

DIR_MODE = 0o040000
_TREE, _BLOB = 2, 3


class RawObjects:
    """Objects of one repository as ``(type, bytes)``; missing or damaged ones raise lfsreg errors."""

    def __init__(self, git: GitStore) -> None:
        self._store = git.repo.object_store
        self._packs = list(self._store.packs)

    def raw(self, sha: bytes, kind: int, what: str = "") -> bytes:
        """The content of object ``sha`` (hex), which must be of type ``kind`` (2 tree, 3 blob)."""
        name = f"git object {sha.decode()}" + (f" ({what})" if what else "")
        try:
            found: tuple[int, bytes] | None = None
            binary = hex_to_sha(ObjectID(sha))
            for pack in self._packs:
                try:
                    found = pack.get_raw(binary)
                    break
                except KeyError:
                    continue
            if found is None:
                found = self._store.get_raw(ObjectID(sha))  # loose, or a pack that appeared since
        except KeyError:
            raise BlobNotFound(f"{name} is missing", hint="run `git fsck` in the repository") from None
        except (ChecksumMismatch, ObjectFormatException, zlib.error) as exc:
            raise CorruptContentError(f"{name} is damaged: {exc}", hint="run `git fsck` in the repository") from None
        kind_found, data = found
        if kind_found != kind:
            raise NotFoundError(f"{name} is not a {'tree' if kind == _TREE else 'blob'}")
        return data if isinstance(data, bytes) else b"".join(data)

    def tree(self, sha: bytes, what: str = "") -> list[tuple[str, bool, bytes]]:
        """Entries of tree ``sha``: ``(name, is_dir, sha)``."""
        data = self.raw(sha, _TREE, what)
        try:
            return [(name.decode("utf-8", "replace"), mode == DIR_MODE, bytes(s)) for name, mode, s in parse_tree(data, 20)]
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


def read_commit(git: GitStore, sha: bytes) -> tuple[bytes, tuple[str, ...]]:
    """Root tree id and parent ids of the commit ``sha`` (hex); :class:`BlobNotFound` if missing."""
    try:
        commit = git.objects.get(sha)
    except KeyError:
        raise BlobNotFound(f"git object {sha.decode()} (a commit) is missing", hint="run `git fsck` in the repository") from None
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


__all__ = ["RawObjects", "directory_bytes", "read_commit"]
