"""A bare git repository as a versioned tree of files: read at a commit, write, compare-and-swap.

Objects are written as loose objects straight into the repository, each to a temporary file
renamed into place (:mod:`lfsreg.git.objects`); they are invisible until a ref points at them,
so a failed or killed push leaves nothing reachable behind. The branch moves only by
compare-and-swap under git's own ``.lock`` protocol, which stock git honours too; a lock left
by a killed process is reported by name, with the way out (:mod:`lfsreg.git.locks`).

The registry branch is the one the repository's ``HEAD`` names (``git init --bare`` on a
machine whose git defaults to ``master`` gives ``master``), else ``main``
(:func:`choose_branch`). dulwich's ``NewType`` ids stay inside this package: callers see
``str`` commit ids and ``bytes`` object ids.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Mapping

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from .. import interrupts
from ..errors import NotARegistryError, NotFoundError
from ..staging import DISK_ERRORS, storage_error, writing
from . import locks
from .levels import DIR_MODE as DIR_MODE
from .objects import ObjectFiles
from .reffiles import ANY, abandon_git_files, swap_ref
from .snapshot import Snapshot

DEFAULT_BRANCH = b"refs/heads/main"
BRANCH = DEFAULT_BRANCH  # the name of earlier releases
FILE_MODE = 0o100644
_PACK_THRESHOLD = 6700  # git's gc.auto
PARTIAL_MARKER = "partial"  # in a mirror fetched in part (lfsreg.git.partial), beside git's own "shallow"


def _ident() -> bytes:
    return os.environ.get("LFSREG_COMMITTER", "lfsreg <lfsreg@localhost>").encode()


def choose_branch(head_target: bytes | None, branches: Collection[bytes]) -> bytes:
    """The registry branch, from what ``HEAD`` names and which branches exist.

    ``HEAD``'s branch when it names one, born or unborn; ``main`` when ``HEAD`` names none
    (detached, or not advertised), and when it names an unborn branch while ``main`` exists
    (a registry written by an lfsreg that always used ``main``).
    """
    if head_target is None or not head_target.startswith(b"refs/heads/"):
        return DEFAULT_BRANCH
    if head_target not in branches and DEFAULT_BRANCH in branches:
        return DEFAULT_BRANCH
    return head_target


def _wait(lock: str, repo: str, deadline: float, *, cache: bool) -> None:
    """Wait a moment for ``lock``; raise once it is stale (unless ``cache``: remove it) or too old."""
    state = locks.inspect(lock)
    if state is not None and state.stale and cache:
        locks.remove_if_stale(lock)
        return
    if state is not None and (state.stale or time.monotonic() > deadline):
        error = locks.wait_error(lock, repo)
        if error is not None:
            raise error
    time.sleep(0.01)


class _Repo(Repo):
    """dulwich's repository with a ``shallow`` update that is safe between processes."""

    lfsreg_cache = False  # a store lfsreg owns (a mirror): stale locks in it are removed

    def update_shallow(self, new_shallow: set[ObjectID] | None, new_unshallow: set[ObjectID] | None) -> None:
        """Merge the fetch's boundary into ``shallow`` under its lock (dulwich reads before locking).

        Concurrent fetches into one mirror each add the commits they stopped at; a boundary
        lost to a read-modify-write race would make a later walk step off the history.
        """
        path = os.path.join(self.controldir(), "shallow")
        deadline = time.monotonic() + locks.LOCK_WAIT
        while True:
            try:
                f = GitFile(path, "wb")
                break
            except FileLocked:
                _wait(path + ".lock", self.controldir(), deadline, cache=self.lfsreg_cache)
        try:
            try:
                with open(path, "rb") as current:
                    shallow = {line.strip() for line in current if line.strip()}
            except FileNotFoundError:
                shallow = set()
            shallow |= {bytes(s) for s in new_shallow or ()}
            shallow -= {bytes(s) for s in new_unshallow or ()}
            f.write(b"".join(sha + b"\n" for sha in sorted(shallow)))
            f.close()  # flushes: a full disk refuses it here
        except BaseException as exc:
            abandon_git_files(exc)
            raise


class GitStore:
    """A bare git repository holding the registry on one branch (:attr:`branch`)."""

    def __init__(self, repo: _Repo, path: str, *, cache: bool = False) -> None:
        self._repo = repo
        self.path = path
        self.cache = cache
        repo.lfsreg_cache = cache
        self.objects = ObjectFiles(repo.object_store)
        self.branch = self._local_branch()
        self._roots: dict[str, bytes] = {}  # commit -> its tree, of the snapshots made

    @classmethod
    def open(cls, path: str, *, cache: bool = False) -> GitStore:
        """Open an existing bare repository; raise :class:`NotARegistryError` if it is not one.

        ``cache``: the repository is lfsreg's own (a mirror of a remote); stale locks in it are
        removed instead of reported.
        """
        if not os.path.isdir(path):
            raise NotFoundError(f"{path}: no such registry", hint=f"create it with: lfsreg init {path}")
        try:
            with interrupts.deferred():  # a SIGTERM inside dulwich's constructors left half a store (its __del__ failed)
                repo = _Repo(path)
        except NotGitRepository as exc:
            raise NotARegistryError(f"{path}: not a git repository") from exc
        if not repo.bare:
            raise NotARegistryError(f"{path}: a git working tree, not a bare registry repository")
        return cls(repo, path, cache=cache)

    @classmethod
    def init(cls, path: str, *, cache: bool = False) -> GitStore:
        """Create a new bare repository whose HEAD is ``main``, or open the one that won a race.

        The repository is built beside ``path`` and renamed into place (``rename(2)`` also
        replaces an empty directory), so concurrent first pushes never see half a repository.
        """
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        with writing(path):
            tmp = tempfile.mkdtemp(prefix=".lfsreg-init-", dir=parent)
        try:
            with interrupts.deferred():
                Repo.init_bare(tmp, default_branch=b"main").close()
            os.chmod(tmp, 0o755)
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                pass  # another process created it first: open theirs
            elif exc.errno in DISK_ERRORS:
                abandon_git_files(exc)
                raise storage_error(exc, path) from None
            else:
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(path, cache=cache)

    def _local_branch(self) -> bytes:
        try:
            target = self._repo.refs.get_symrefs().get(Ref(b"HEAD"))
        except (OSError, ValueError, KeyError):
            target = None
        has_main = self._repo.refs.read_ref(Ref(DEFAULT_BRANCH)) is not None
        return choose_branch(target, [DEFAULT_BRANCH] if has_main else [])

    def head(self) -> str | None:
        """The commit the registry branch points at, or ``None`` before the first commit."""
        try:
            return self._repo.refs[Ref(self.branch)].decode()
        except KeyError:
            return None

    def snapshot(self, commit: str | None) -> Snapshot:
        """A read view of ``commit`` (``None``: the empty tree before the first commit)."""
        snapshot = Snapshot(self.objects, commit, root=self._roots.get(commit) if commit else None)
        if commit is not None and snapshot.root is not None:
            # A commit never changes: the next view of it need not read it again (a push of
            # thousands of images writes a message of megabytes).
            self._roots[commit] = snapshot.root
        return snapshot

    def write_blob(self, data: bytes) -> bytes:
        """Store ``data`` as a blob; return its object id."""
        return self.objects.add(Blob.from_string(data))

    def _write_tree(self, base: bytes | None, changes: Mapping[str, bytes | None], *, root: bool) -> bytes | None:
        """Write the tree ``base`` with ``changes`` applied; ``None`` for an empty subtree (git has none)."""
        tree = Tree()
        if base is not None:
            old = self.objects.get(base)
            if not isinstance(old, Tree):
                raise NotFoundError(f"git object {base.decode()} is not a tree")
            for entry in old.iteritems():
                tree.add(entry.path, entry.mode, entry.sha)
        below: dict[bytes, dict[str, bytes | None]] = {}
        for path, sha in changes.items():
            name, _, rest = path.strip("/").partition("/")
            if rest:
                below.setdefault(name.encode(), {})[rest] = sha
            elif sha is None:
                if name.encode() in tree:
                    del tree[name.encode()]
            else:
                tree.add(name.encode(), FILE_MODE, ObjectID(sha))
        for subdir, sub in below.items():
            current = tree[subdir] if subdir in tree else None  # noqa: SIM401 -- Tree has no get()
            new = self._write_tree(current[1] if current and current[0] == DIR_MODE else None, sub, root=False)
            if new is not None:
                tree.add(subdir, DIR_MODE, ObjectID(new))
            elif subdir in tree:
                del tree[subdir]
        if not root and not len(tree):
            return None
        return self.objects.add(tree)

    def make_commit(self, parent: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        """Write a commit on top of ``parent`` that applies ``changes`` (path -> blob id or delete)."""
        base = None
        if parent is not None:
            parent_commit = self.objects.get(parent.encode())
            if not isinstance(parent_commit, Commit):
                raise NotFoundError(f"git object {parent} is not a commit")
            base = bytes(parent_commit.tree)
        tree_id = self._write_tree(base, changes, root=True)
        assert tree_id is not None  # the root tree is written even when empty
        commit = Commit()
        commit.tree = ObjectID(tree_id)
        commit.parents = [ObjectID(parent.encode())] if parent else []
        commit.author = commit.committer = _ident()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        return self.objects.add(commit).decode()

    def close(self) -> None:
        """Release pack files (dulwich keeps them mapped until closed; one an error's frames still view, when they go)."""
        with contextlib.suppress(BufferError):
            self._repo.close()

    def maybe_pack(self, threshold: int = _PACK_THRESHOLD) -> int:
        """Pack loose objects once there are about ``threshold`` of them, as ``git gc --auto`` does.

        Reads of a big registry from thousands of loose files are twice as slow as from a pack.
        Returns the objects packed; never raises (it runs after the commit landed).
        """
        return self.objects.pack(threshold)

    def compare_and_swap(self, old: str | None, new: str) -> bool:
        """Move the branch from ``old`` to ``new`` atomically; ``False`` if it no longer is ``old``.

        Waits while another process holds the branch's lock. A lock left by an lfsreg process
        killed in its update is removed (:func:`lfsreg.git.locks.ref_update`); any other stale
        lock raises :class:`~lfsreg.errors.LocalStorageError` naming it (in a cache: removed).
        """
        ref = self.branch
        lock = os.path.join(self._repo.controldir(), *self.branch.decode().split("/")) + ".lock"
        deadline = time.monotonic() + locks.LOCK_WAIT
        while True:
            with locks.ref_update(self._repo.controldir(), lock):
                try:
                    return swap_ref(self._repo, ref, old.encode() if old else None, new.encode())
                except FileLocked as exc:
                    lock = os.fsdecode(exc.lockfilename)
            _wait(lock, self.path, deadline, cache=self.cache)

    def note_ref(self, name: bytes, commit: str) -> None:
        """Set ``name`` to ``commit`` if no other process is setting it (a hint: last one wins)."""
        try:
            swap_ref(self._repo, name, ANY, commit.encode())
        except FileLocked as exc:
            locks.remove_if_stale(os.fsdecode(exc.lockfilename))

    def read_ref(self, name: bytes) -> str | None:
        """The commit ``name`` points at, or ``None``."""
        try:
            return self._repo.refs[Ref(name)].decode()
        except KeyError:
            return None

    def partial(self) -> bool:
        """Whether this is a mirror fetched in part (:mod:`lfsreg.git.partial`)."""
        return os.path.exists(os.path.join(self.path, PARTIAL_MARKER))

    def shallow(self) -> set[bytes]:
        """The commits whose parents this (shallow) repository lacks."""
        return {bytes(s) for s in self._repo.get_shallow()}

    def __contains__(self, sha: bytes) -> bool:
        return sha in self.objects

    @property
    def repo(self) -> Repo:
        """The dulwich repository (for :mod:`lfsreg.git.remote` only)."""
        return self._repo
