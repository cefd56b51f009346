"""The object database of a bare repository, written the way git writes it.

A loose object is written to ``objects/xx/tmp_obj_*`` and renamed into place: it appears
whole or not at all, and a writer killed half-way leaves only a temporary file (which stock
``git fsck`` ignores and this module sweeps away once it is old). No ``.lock`` file is ever
taken for an object, so there is nothing for a killed writer to leave locked.

Packing moves loose objects into a pack and then deletes them; a reader that looked in the
packs just before the pack appeared and in the loose files just after they went looks again.
One process packs or fetches a pack at a time (an advisory lock on ``objects/pack``, released
by the kernel if the process dies), and packing never fails the command that triggered it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID, ShaFile
from dulwich.pack import Pack

from ..errors import ConcurrentUpdateError
from ..staging import storage_error
from . import locks

__all__ = ["OBJECT_HEADS", "ObjectFiles", "blob_id", "object_id", "storage_error"]

log = logging.getLogger(__name__)
TMP_PREFIX = "tmp_obj_"  # git's own prefix: ``git fsck`` and ``git gc`` know these files
_READ_ATTEMPTS = 3
_SWEEP_AFTER = 3600.0  # git gc prunes temporary object files after the same delay


#: git's object types by their number in a pack, with the header their ids hash before the content.
OBJECT_HEADS = {1: b"commit ", 2: b"tree ", 3: b"blob ", 4: b"tag "}
_BLOB = 3


def object_id(kind: int, body: bytes) -> bytes:
    """The binary git object id of an object of type ``kind`` (:data:`OBJECT_HEADS`) holding ``body``."""
    return hashlib.sha1(OBJECT_HEADS[kind] + b"%d\0" % len(body) + body).digest()


def blob_id(data: bytes) -> bytes:
    """The git object id (hex) of a blob holding ``data``: what a tree entry of that file names."""
    return object_id(_BLOB, data).hex().encode()


class ObjectFiles:
    """Reads and writes the objects of one repository's ``objects`` directory."""

    def __init__(self, store: DiskObjectStore) -> None:
        self._store = store
        self.path = os.fspath(store.path)
        #: Set for a mirror fetched partially (:mod:`lfsreg.git.partial`): fetches objects by id
        #: from the remote, ``False`` if it cannot. A read of a missing object asks it once.
        #: ``fetch_missing(ids, below)`` also fetches ``below`` levels under each tree in ``ids`` (``None``: all).
        self.fetch_missing: Callable[[Sequence[bytes], int | None], bool] | None = None
        #: Set with :attr:`fetch_missing`: fetches objects by id that may not exist on the remote (hints,
        #: lfsreg.registry.hints). ``False`` if the server did not send them all; it never falls back to a
        #: fetch of everything, and a server that refuses it keeps answering :attr:`fetch_missing`.
        self.fetch_optional: Callable[[Sequence[bytes]], bool] | None = None
        #: What a fetch just stored and hashed (lfsreg.git.packstore): ``binary id -> (type, content)``,
        #: taken by the first read, which then neither inflates nor checks it again.
        self.fresh: dict[bytes, tuple[int, bytes]] = {}

    def prefetch_whole(self, tree: bytes) -> None:
        """Fetch ``tree`` with everything under it in one exchange, if this is a partial mirror that lacks some of it."""
        if self.fetch_missing is not None:
            self.fetch_missing([tree], None)

    def _missing(self, hexsha: bytes) -> bool:
        """Whether fetching ``hexsha`` from the remote was tried (read again), after a read found it absent."""
        return self.fetch_missing is not None and not self.has(hexsha) and self.fetch_missing([hexsha], 0)

    def _loose_path(self, hexsha: bytes) -> str:
        name = hexsha.decode("ascii")
        return os.path.join(self.path, name[:2], name[2:])

    def get(self, hexsha: bytes) -> ShaFile:
        """The object ``hexsha``; :class:`KeyError` if the repository does not have it."""
        attempt = 1
        while True:
            try:
                return self._store[ObjectID(hexsha)]
            except KeyError:
                # A concurrent pack may have appeared after we scanned the packs and taken the
                # loose copy away before we looked for it: looking again rescans the packs.
                if attempt == _READ_ATTEMPTS:
                    if self._missing(hexsha):
                        return self._store[ObjectID(hexsha)]
                    raise
                attempt += 1

    def take_fresh(self, binary: bytes) -> tuple[int, bytes] | None:
        """``(type, content)`` of the object with binary id ``binary`` if a fetch just stored and hashed it (taken once), else ``None``."""
        return self.fresh.pop(binary, None) if self.fresh else None

    def get_raw(self, hexsha: bytes) -> tuple[int, bytes]:
        """``(type, content)`` of the object ``hexsha``, unchecked; :class:`KeyError` if absent (retried as :meth:`get`)."""
        if self.fresh:
            with contextlib.suppress(ValueError):
                found = self.take_fresh(bytes.fromhex(hexsha.decode("ascii")))
                if found is not None:
                    return found
        attempt = 1
        while True:
            try:
                kind, data = self._store.get_raw(ObjectID(hexsha))
                return kind, data if isinstance(data, bytes) else b"".join(data)
            except KeyError:
                if attempt == _READ_ATTEMPTS:
                    if self._missing(hexsha):
                        kind, data = self._store.get_raw(ObjectID(hexsha))
                        return kind, data if isinstance(data, bytes) else b"".join(data)
                    raise
                attempt += 1

    def __contains__(self, hexsha: bytes) -> bool:
        path = self._loose_path(hexsha)
        with contextlib.suppress(OSError):
            # Refresh the mtime as git does, so an age-based prune never takes an object a
            # new commit is about to reference.
            os.utime(path)
            return True

        def freshen(pack: Pack) -> bool:
            # the same for the pack holding it, as git does: `lfsreg gc` keeps unreachable
            # objects whose file is recent (dulwich's lookup rescans packs that moved)
            if ObjectID(hexsha) not in pack:
                raise KeyError(hexsha)
            with contextlib.suppress(OSError):
                os.utime(pack._data_path)
            return True

        try:
            return self._store._lookup_in_packs(freshen)
        except KeyError:
            return False

    def has(self, hexsha: bytes) -> bool:
        """Whether the object is stored, loose or packed; unlike ``in``, a read that refreshes nothing."""
        return bool(self._store.contains_loose(ObjectID(hexsha)) or self._store.contains_packed(ObjectID(hexsha)))

    def add(self, obj: ShaFile) -> bytes:
        """Store ``obj`` (temporary file, then rename) unless it is there; return its id."""
        hexsha = bytes(obj.id)
        path = self._loose_path(hexsha)
        # A writer of an earlier lfsreg (dulwich's lock protocol) killed while writing this
        # object left ``<sha>.lock``: nothing will ever rename it, and ``git fsck`` flags it.
        if os.path.exists(path + ".lock"):
            locks.remove_if_stale(path + ".lock", unheld=True)
        if hexsha in self:
            return hexsha
        directory = os.path.dirname(path)
        for attempt in (1, 2):
            try:
                os.makedirs(directory, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
                break
            except FileNotFoundError as exc:  # `lfsreg gc` removed the empty directory just now
                if attempt == 2:
                    raise storage_error(exc, path) from exc
            except OSError as exc:
                raise storage_error(exc, path) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(obj.as_legacy_object())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise storage_error(exc, path) from exc
        return hexsha

    def loose_estimate(self) -> int:
        """The number of loose objects, estimated from one fan-out directory as git does."""
        try:
            names = os.listdir(os.path.join(self.path, "17"))
        except FileNotFoundError:
            return 0
        return 256 * sum(1 for n in names if len(n) == 38)

    @contextlib.contextmanager
    def _pack_lock(self, wait: float = 0.0) -> Iterator[bool]:
        """Hold the lock on ``objects/pack``, waiting up to ``wait`` s (``False``: another process kept it)."""
        fd = os.open(os.path.join(self.path, "pack"), os.O_RDONLY)
        try:
            yield locks.flock_within(fd, wait)
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def pack_writes(self) -> Iterator[None]:
        """Be the one process adding packs to this store (a fetch) until the block ends.

        Processes sharing a mirror fetch the same objects at the same moment, and dulwich names
        a pack by its content: two writers of one pack meet on its index's lock, or one reads the
        index the other is writing (ChecksumMismatch). The lock is the one packing takes.
        """
        with self._pack_lock(wait=locks.LOCK_WAIT) as mine:
            if not mine:
                raise ConcurrentUpdateError(
                    f"{os.path.join(self.path, 'pack')}: another lfsreg process kept adding objects for {locks.LOCK_WAIT:.0f} s",
                    hint="run the command again when it is done",
                )
            yield

    def pack(self, threshold: int) -> int:
        """Pack the loose objects if there are more than about ``threshold``; return how many.

        Never raises: packing is an optimisation done after a commit landed, and a failure
        here (a full disk, another process packing) must not turn that success into an error.
        """
        try:
            if self.loose_estimate() <= threshold:
                return 0
            with self._pack_lock() as mine:
                if not mine or self.loose_estimate() <= threshold:
                    return 0
                packed = int(self._store.pack_loose_objects())
                self.sweep()
                return packed
        except Exception as exc:  # anything at all: see the docstring
            log.warning("%s: packing loose objects failed (the push itself succeeded): %s", self.path, exc)
            return 0

    def sweep(self, older_than: float = _SWEEP_AFTER) -> None:
        """Remove temporary files and object locks left by killed writers, once they are old."""
        now = time.time()
        for fanout in os.listdir(self.path):
            if len(fanout) != 2:
                continue
            directory = os.path.join(self.path, fanout)
            with contextlib.suppress(OSError):
                for name in os.listdir(directory):
                    path = os.path.join(directory, name)
                    if name.startswith(TMP_PREFIX):
                        with contextlib.suppress(OSError):
                            if now - os.stat(path).st_mtime > older_than:
                                os.unlink(path)
                    elif name.endswith(".lock"):
                        locks.remove_if_stale(path)
