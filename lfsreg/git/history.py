"""A branch's history as plain values: walking commits, reading their trees, writing rewritten ones.

Reads share one cache of tree objects by id across commits, so walking thousands of commits
that differ in a few paths reads each distinct tree once. Commits are walked along first
parents, newest first (``git log --first-parent``); a shallow repository's walk stops at its
boundary and says so (:attr:`Walk.truncated`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import Blob, Commit, ObjectID, Tree

from ..errors import BlobNotFound, CorruptContentError, NotFoundError
from .store import DIR_MODE, FILE_MODE, GitStore

__all__ = ["DIR_MODE", "FILE_MODE", "CommitInfo", "Trees", "Walk"]


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit: its id, first parent, root tree, identities, times (epoch s, tz offset s) and message."""

    id: str
    parent: str | None
    tree: bytes
    author: bytes
    author_time: int
    author_tz: int
    committer: bytes
    time: int
    tz: int
    message: str


class Trees:
    """Reads trees and blobs of one repository by id, with a cache shared by every commit."""

    def __init__(self, store: GitStore) -> None:
        self.store = store
        self._trees: dict[bytes, list[tuple[str, int, bytes]]] = {}
        self._blobs: dict[bytes, bytes] = {}

    def _get(self, sha: bytes, what: str) -> object:
        try:
            return self.store.objects.get(sha)
        except KeyError:
            raise BlobNotFound(f"git object {sha.decode()} ({what}) is missing", hint="run `git fsck` in the repository") from None
        except (ChecksumMismatch, ObjectFormatException, zlib.error) as exc:
            hint = "run `git fsck` in the repository"
            raise CorruptContentError(f"git object {sha.decode()} ({what}) is damaged: {exc}", hint=hint) from None

    def entries(self, sha: bytes, what: str = "a tree") -> list[tuple[str, int, bytes]]:
        """``(name, mode, id)`` of the tree ``sha``."""
        found = self._trees.get(sha)
        if found is None:
            obj = self._get(sha, what)
            if not isinstance(obj, Tree):
                raise NotFoundError(f"git object {sha.decode()} ({what}) is not a tree")
            found = self._trees[sha] = [(bytes(e.path).decode(), e.mode, bytes(e.sha)) for e in obj.iteritems()]
        return found

    def entry(self, tree: bytes, path: str) -> tuple[int, bytes] | None:
        """``(mode, id)`` at ``path`` under the tree ``tree``, or ``None``."""
        mode, sha = DIR_MODE, tree
        for part in [p for p in path.strip("/").split("/") if p]:
            if mode != DIR_MODE:
                return None
            for name, m, s in self.entries(sha, path):
                if name == part:
                    mode, sha = m, s
                    break
            else:
                return None
        return mode, sha

    def subtree(self, tree: bytes, path: str) -> bytes | None:
        """The id of the directory at ``path``, or ``None``."""
        found = self.entry(tree, path)
        return found[1] if found is not None and found[0] == DIR_MODE else None

    def blob(self, sha: bytes, what: str = "a file") -> bytes:
        """The content of a blob (cached when small: tag files and pointers repeat)."""
        data = self._blobs.get(sha)
        if data is None:
            obj = self._get(sha, what)
            if not isinstance(obj, Blob):
                raise NotFoundError(f"git object {sha.decode()} ({what}) is not a file")
            data = obj.as_raw_string()
            if len(data) <= 4096:
                self._blobs[sha] = data
        return data

    def read(self, tree: bytes, path: str) -> bytes | None:
        """The content of the file at ``path``, or ``None``."""
        found = self.entry(tree, path)
        if found is None or found[0] == DIR_MODE:
            return None
        return self.blob(found[1], path)

    def write_tree(self, entries: Sequence[tuple[str, int, bytes]]) -> bytes:
        """Store a tree of ``(name, mode, id)`` entries; return its id."""
        tree = Tree()
        for name, mode, sha in entries:
            tree.add(name.encode(), mode, ObjectID(sha))
        sha = self.store.objects.add(tree)
        self._trees.setdefault(sha, sorted(entries, key=lambda e: e[0] + ("/" if e[1] == DIR_MODE else "")))
        return sha

    def write_commit(self, tree: bytes, parent: str | None, like: CommitInfo, message: str | None = None) -> str:
        """Store a commit of ``tree`` on ``parent`` with the identities and times of ``like``; return its id."""
        commit = Commit()
        commit.tree = ObjectID(tree)
        commit.parents = [ObjectID(parent.encode())] if parent else []
        commit.author, commit.committer = like.author, like.committer
        commit.author_time, commit.commit_time = like.author_time, like.time
        commit.author_timezone, commit.commit_timezone = like.author_tz, like.tz
        commit.encoding = b"UTF-8"
        commit.message = (like.message if message is None else message).encode()
        return self.store.objects.add(commit).decode()


class Walk:
    """The first-parent chain from a commit, newest first; ``truncated`` once it met a shallow boundary."""

    def __init__(self, store: GitStore) -> None:
        self.store = store
        self.truncated = False

    def commit(self, commit_id: str) -> CommitInfo:
        """One commit's values."""
        try:
            obj = self.store.objects.get(commit_id.encode())
        except KeyError:
            raise BlobNotFound(f"commit {commit_id} is missing", hint="run `git fsck` in the repository") from None
        if not isinstance(obj, Commit):
            raise NotFoundError(f"git object {commit_id} is not a commit")
        return CommitInfo(
            commit_id,
            obj.parents[0].decode() if obj.parents else None,
            bytes(obj.tree),
            bytes(obj.author),
            int(obj.author_time),
            int(obj.author_timezone),
            bytes(obj.committer),
            int(obj.commit_time),
            int(obj.commit_timezone),
            obj.message.decode("utf-8", "replace"),
        )

    def commits(self, tip: str | None) -> Iterator[CommitInfo]:
        """``tip`` and its first parents, newest first (the last one's ``parent`` is ``None``, or was cut off)."""
        shallow = self.store.shallow()
        current = tip
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            info = self.commit(current)
            if info.parent is not None and (current.encode() in shallow or not self.store.objects.has(info.parent.encode())):
                self.truncated = True
                yield replace(info, parent=None)
                return
            yield info
            current = info.parent
