"""A bare git repository as a versioned tree of files: read at a commit, write, compare-and-swap.

Objects are written as loose objects straight into the repository; they are invisible until a
ref points at them, so a failed push leaves nothing reachable behind. The branch moves only by
compare-and-swap under git's own ``.lock`` protocol, which stock git honours too.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.repo import Repo

from ..errors import ConcurrentUpdateError, NotARegistryError, NotFoundError

BRANCH = b"refs/heads/main"
FILE_MODE = 0o100644
DIR_MODE = 0o040000
_LOCK_WAIT = 10.0


def _ident() -> bytes:
    return os.environ.get("LFSREG_COMMITTER", "lfsreg <lfsreg@localhost>").encode()


class Snapshot:
    """The registry tree at one commit (or the empty tree when ``commit`` is ``None``).

    Trees are cached per snapshot, so repeated lookups under the same directories are cheap.
    """

    def __init__(self, repo: Repo, commit: str | None) -> None:
        self._repo = repo
        self.commit = commit
        self._trees: dict[bytes, Tree] = {}
        self._blobs: dict[bytes, bytes] = {}
        self.root: bytes | None = None
        if commit is not None:
            obj = repo.object_store[commit.encode()]
            assert isinstance(obj, Commit)
            self.root = obj.tree

    def _tree(self, sha: bytes) -> Tree:
        tree = self._trees.get(sha)
        if tree is None:
            obj = self._repo.object_store[sha]
            if not isinstance(obj, Tree):
                raise NotFoundError(f"git object {sha.decode()} is not a tree")
            tree = self._trees[sha] = obj
        return tree

    def _entry(self, path: str) -> tuple[int, bytes] | None:
        if self.root is None:
            return None
        mode, sha = DIR_MODE, self.root
        for part in path.strip("/").split("/") if path.strip("/") else []:
            if mode != DIR_MODE:
                return None
            try:
                mode, sha = self._tree(sha)[part.encode()]
            except KeyError:
                return None
        return mode, sha

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path``, or ``None`` if there is none."""
        entry = self._entry(path)
        if entry is None or entry[0] == DIR_MODE:
            return None
        return self.blob(entry[1])

    def blob(self, sha: bytes) -> bytes:
        """The content of a blob by its git object id (small ones are cached: many tag files share one)."""
        data = self._blobs.get(sha)
        if data is None:
            obj = self._repo.object_store[sha]
            if not isinstance(obj, Blob):
                raise NotFoundError(f"git object {sha.decode()} is not a blob")
            data = obj.as_raw_string()
            if len(data) <= 4096:
                self._blobs[sha] = data
        return data

    def exists(self, path: str) -> bool:
        """True if a file or directory exists at ``path``."""
        return self._entry(path) is not None

    def listdir(self, path: str) -> list[tuple[str, bool, bytes]]:
        """Entries of the directory at ``path``: ``(name, is_dir, sha)``; empty if absent."""
        entry = self._entry(path)
        if entry is None or entry[0] != DIR_MODE:
            return []
        return [(e.path.decode(), e.mode == DIR_MODE, e.sha) for e in self._tree(entry[1]).iteritems()]

    def walk(self, path: str) -> Iterator[tuple[str, bytes]]:
        """Every file below ``path``: ``(path relative to it, blob sha)``."""
        stack = [("", path)]
        while stack:
            rel, full = stack.pop()
            for name, is_dir, sha in self.listdir(full):
                sub = f"{rel}/{name}" if rel else name
                if is_dir:
                    stack.append((sub, f"{full}/{name}"))
                else:
                    yield sub, sha


class GitStore:
    """A bare git repository holding one branch, ``main``."""

    def __init__(self, repo: Repo, path: str) -> None:
        self._repo = repo
        self.path = path

    @classmethod
    def open(cls, path: str) -> GitStore:
        """Open an existing bare repository; raise :class:`NotARegistryError` if it is not one."""
        if not os.path.isdir(path):
            raise NotFoundError(f"{path}: no such registry", hint=f"create it with: lfsreg init {path}")
        try:
            repo = Repo(path)
        except NotGitRepository as exc:
            raise NotARegistryError(f"{path}: not a git repository") from exc
        if not repo.bare:
            raise NotARegistryError(f"{path}: a git working tree, not a bare registry repository")
        return cls(repo, path)

    @classmethod
    def init(cls, path: str) -> GitStore:
        """Create a new bare repository whose HEAD is ``main``, or open the one that won a race.

        The repository is built beside ``path`` and renamed into place (``rename(2)`` also
        replaces an empty directory), so concurrent first pushes never see half a repository.
        """
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".lfsreg-init-", dir=parent)
        try:
            Repo.init_bare(tmp, default_branch=b"main").close()
            os.chmod(tmp, 0o755)
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(path)

    def head(self) -> str | None:
        """The commit ``main`` points at, or ``None`` in an empty repository."""
        try:
            return self._repo.refs[BRANCH].decode()
        except KeyError:
            return None

    def snapshot(self, commit: str | None) -> Snapshot:
        """A read view of ``commit`` (``None``: the empty tree before the first commit)."""
        return Snapshot(self._repo, commit)

    def _add(self, obj: ShaFile) -> None:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                self._repo.object_store.add_object(obj)
                return
            except FileLocked:
                # Another writer is storing this very object; it is content-addressed.
                if obj.id in self._repo.object_store:
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def write_blob(self, data: bytes) -> bytes:
        """Store ``data`` as a blob; return its object id."""
        blob = Blob.from_string(data)
        self._add(blob)
        return blob.id

    def make_commit(self, parent: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        """Write a commit on top of ``parent`` that applies ``changes`` (path -> blob id or delete)."""
        if parent is None:
            tree = Tree()
            self._add(tree)
            root: ObjectID | Tree = tree.id
        else:
            parent_commit = self._repo.object_store[parent.encode()]
            assert isinstance(parent_commit, Commit)
            root = parent_commit.tree
        items = [(p.encode(), FILE_MODE if sha else None, sha) for p, sha in sorted(changes.items())]
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                tree_id = commit_tree_changes(self._repo.object_store, root, items)  # type: ignore[arg-type]
                break
            except FileLocked:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        commit = Commit()
        commit.tree = tree_id
        commit.parents = [parent.encode()] if parent else []
        commit.author = commit.committer = _ident()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        self._add(commit)
        return commit.id.decode()

    def close(self) -> None:
        """Release pack files (dulwich keeps them mapped until closed)."""
        self._repo.close()

    def maybe_pack(self, threshold: int = 6700) -> int:
        """Pack loose objects once there are about ``threshold`` of them, as ``git gc --auto`` does.

        Reads of a big registry from thousands of loose files are twice as slow as from a pack.
        The count is estimated from one fan-out directory, like git's. Returns objects packed.
        """
        sample = os.path.join(self.path, "objects", "17")
        try:
            estimate = len(os.listdir(sample)) * 256
        except FileNotFoundError:
            return 0
        if estimate <= threshold:
            return 0
        return int(self._repo.object_store.pack_loose_objects())

    def compare_and_swap(self, old: str | None, new: str) -> bool:
        """Move ``main`` from ``old`` to ``new`` atomically; ``False`` if it no longer is ``old``."""
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                if old is None:
                    return bool(self._repo.refs.add_if_new(BRANCH, new.encode()))
                return bool(self._repo.refs.set_if_equals(BRANCH, old.encode(), new.encode()))
            except FileLocked:
                if time.monotonic() > deadline:
                    raise ConcurrentUpdateError(f"{self.path}: {BRANCH.decode()} stayed locked for {_LOCK_WAIT:.0f} s") from None
                time.sleep(0.02)
