"""The registry tree at one commit, read file by file (:class:`Snapshot`), fetching what a partial mirror lacks."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import Blob, Commit, ShaFile, Tree

from ..errors import BlobNotFound, CorruptContentError, NotFoundError
from .levels import DIR_MODE, Wanted, prefetch_levels
from .objects import ObjectFiles
from .trees import quick_tree

_UNSEEN = object()


class Snapshot:
    """The registry tree at one commit (or the empty tree when ``commit`` is ``None``).

    Trees are cached per snapshot, so repeated lookups under the same directories are cheap.
    Objects are read through dulwich one at a time; :class:`lfsreg.git.bulk.BulkSnapshot` is
    the same view for reads of a whole registry.
    """

    def __init__(self, objects: ObjectFiles, commit: str | None, *, root: bytes | None = None) -> None:
        self.objects = objects
        self._objects = objects
        self.commit = commit
        self._trees: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}  # tree id -> {name: (mode, id)}
        self._dirs: dict[str, object] = {}  # directory path -> its entries, or None
        self._blobs: dict[bytes, bytes] = {}
        self.root: bytes | None = root  # the commit's tree, when the caller knows it already
        if commit is not None and root is None:
            obj = self._get(commit.encode())
            if not isinstance(obj, Commit):
                raise NotFoundError(f"git object {commit} is not a commit")
            self.root = bytes(obj.tree)

    def _get(self, sha: bytes, path: str | None = None) -> ShaFile:
        """The object ``sha`` (the file ``path``); a missing or damaged one is named, as ``git fsck`` would."""
        what = f"git object {sha.decode()}" + (f" ({path})" if path else "")
        try:
            return self._objects.get(sha)
        except KeyError:
            raise BlobNotFound(f"{what} is missing", hint="run `git fsck` in the repository") from None
        except (ChecksumMismatch, ObjectFormatException, zlib.error, OverflowError) as exc:  # Overflow: a damaged delta's size
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorruptContentError(f"{what} is damaged: {text}", hint="run `git fsck` in the repository") from None

    def _tree(self, sha: bytes) -> dict[bytes, tuple[int, bytes]]:
        tree = self._trees.get(sha)
        if tree is None:
            tree = self._trees[sha] = self._read_tree(sha)
        return tree

    def _read_tree(self, sha: bytes) -> dict[bytes, tuple[int, bytes]]:
        """The entries of tree ``sha``, in the tree's order: ``{name: (mode, id)}``."""
        found = quick_tree(self._objects, sha)
        if found is not None:
            return found
        obj = self._get(sha)
        if not isinstance(obj, Tree):
            raise NotFoundError(f"git object {sha.decode()} is not a tree")
        return {bytes(e.path): (e.mode, bytes(e.sha)) for e in obj.iteritems()}

    def _dir(self, path: str) -> dict[bytes, tuple[int, bytes]] | None:
        """The entries of the directory ``path`` (no leading or trailing ``/``), or ``None`` if there is none."""
        found = self._dirs.get(path, _UNSEEN)
        if found is _UNSEEN:
            assert self.root is not None
            if not path:
                found = self._tree(self.root)
            else:
                parent, _, name = path.rpartition("/")
                above = self._dir(parent)
                entry = above.get(name.encode()) if above is not None else None
                found = self._tree(entry[1]) if entry is not None and entry[0] == DIR_MODE else None
            self._dirs[path] = found
        return found  # type: ignore[return-value]

    def _entry(self, path: str) -> tuple[int, bytes] | None:
        if self.root is None:
            return None
        path = path.strip("/")
        if not path:
            return DIR_MODE, self.root
        parent, _, name = path.rpartition("/")
        above = self._dir(parent)  # directories are looked up once per snapshot
        return above.get(name.encode()) if above is not None else None

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path``, or ``None`` if there is none."""
        entry = self._entry(path)
        if entry is None or entry[0] == DIR_MODE:
            return None
        return self.blob(entry[1], path)

    def blob(self, sha: bytes, path: str | None = None) -> bytes:
        """The content of a blob by its git object id (small ones are cached: many tag files share one).

        ``path`` names the file in errors: :class:`BlobNotFound` (missing), :class:`CorruptContentError` (damaged).
        """
        data = self._blobs.get(sha)
        if data is None:
            data = self._read_blob(sha, path)
            if len(data) <= 4096:
                self._blobs[sha] = data
        return data

    def _read_blob(self, sha: bytes, path: str | None) -> bytes:
        obj = self._get(sha, path)
        if not isinstance(obj, Blob):
            raise NotFoundError(f"git object {sha.decode()} is not a blob")
        return obj.as_raw_string()

    @property
    def fetches(self) -> bool:
        """Whether reads may fetch from a remote (a mirror): :meth:`prefetch` is worth preparing for."""
        return self._objects.fetch_missing is not None

    def prefetch(self, paths: Iterable[str] = (), ids: Iterable[bytes] = (), *, below: int = 0, more: Iterable[Wanted] = ()) -> None:
        """Fetch what reading ``paths``, ``more`` and ``ids`` needs, a depth of the paths an exchange (:mod:`lfsreg.git.levels`).

        A directory in ``paths`` comes with ``below`` levels under it; ``more`` pairs a path with its own.
        """
        if self._objects.fetch_missing is not None and self.root is not None:
            prefetch_levels(self._dir, self._objects.has, self._objects.fetch_missing, [*((p, below) for p in paths), *more], ids)

    def fetch_optional(self, ids: Iterable[bytes]) -> bool:
        """Fetch objects by id that may not be the remote's (hints read from the tree), in one exchange.

        ``True`` if the mirror now holds them all; ``False`` if not (the server refused one, or
        this is no partial mirror and one is absent). Errors of the exchange propagate.
        """
        lacking = [i for i in dict.fromkeys(ids) if not self._objects.has(i)]
        if not lacking:
            return True
        return self._objects.fetch_optional is not None and self._objects.fetch_optional(lacking)

    def holds(self, sha: bytes) -> bool:
        """Whether the object ``sha`` is here (in a partial mirror: fetched), without fetching it."""
        return self._objects.has(sha)

    def file_id(self, path: str) -> bytes | None:
        """The git object id of the file at ``path``, or ``None`` if there is none."""
        entry = self._entry(path)
        return entry[1] if entry is not None and entry[0] != DIR_MODE else None

    def exists(self, path: str) -> bool:
        """True if a file or directory exists at ``path``."""
        return self._entry(path) is not None

    def listdir(self, path: str) -> list[tuple[str, bool, bytes]]:
        """Entries of the directory at ``path``: ``(name, is_dir, sha)``; empty if absent."""
        entry = self._entry(path)
        if entry is None or entry[0] != DIR_MODE:
            return []
        return self.tree_entries(entry[1])

    def directory(self, path: str) -> Mapping[bytes, tuple[int, bytes]]:
        """The directory at ``path`` as git stores it, ``{name: (mode, id)}`` (empty if there is none); do not modify.

        For many look-ups in one directory (a shard of ``blobs/``): one dictionary look-up each.
        """
        return self._dir(path.strip("/")) or {}

    def tree_entries(self, sha: bytes) -> list[tuple[str, bool, bytes]]:
        """Entries of the tree ``sha`` (a directory's id from :meth:`listdir`): ``(name, is_dir, sha)``.

        For walks that go down a tree by ids instead of looking each path up from the root.
        """
        return [(name.decode(), mode == DIR_MODE, s) for name, (mode, s) in self._tree(sha).items()]
