"""Checking a registry: every live tag, everything it references, and the LFS objects behind it.

:func:`verify_registry` walks every tag (a tag file that does not parse, a manifest, index or
config that is missing, damaged or does not hash to its digest, a layer pointer that is
malformed or disagrees with its manifest) and then asks the LFS store whether it holds every
object the live tags need, with its size, without reading them (a local registry: one ``stat``
each; a remote: download batch requests, nothing downloaded). ``deep`` also reads every
object and checks it: its oid, the layer digest (a chunked layer's chunks in order), and for a
compressed image layer its diff_id after decompression. A remote's objects are downloaded for
that (into a temporary directory beside the cache, then kept in the cache): a copy already
cached does not vouch for the host's. A deep check that would download more than the
registry's ``limits.transfer`` is refused before it starts (:func:`lfsreg.ops.limits.check_transfer`).

Each problem is reported once (an object many tags share is one problem, naming the first
tag that needs it); nothing stops at the first one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .. import mediatypes as mt
from ..digest import CHUNK, Digest
from ..errors import DigestMismatchError, LfsregError
from ..formats.lfs_pointer import LfsObject
from ..git.bulk import BulkSnapshot
from ..integrity import DiffIdCheck, VerifiedReader
from ..lfs.cache import ObjectCache
from ..lfs.store import CachedLfsStore, LfsStore
from ..progress import ProgressCallback, no_progress
from ..registry.config import read_limits
from ..registry.view import RegistryView
from .chunking import JoinedObjects
from .halves import in_halves
from .limits import check_transfer
from .verify_walk import CheckedLayer, Problem, VerifyReport, Walk
from .walk import paused_gc

#: Objects downloaded at once by a deep check of a remote (the temporary copies are removed after each group).
DEEP_GROUP_BYTES = 1 << 30


def verify_registry(view: RegistryView, lfs: LfsStore, *, deep: bool = False, progress: ProgressCallback = no_progress) -> VerifyReport:
    """Check the registry at ``view`` and the objects ``lfs`` holds for it (see the module docstring).

    Problems are returned, not raised; what does raise is what stops the check as a whole
    (the LFS server unreachable, credentials refused…).
    """
    with BulkSnapshot(view.snapshot) as snapshot, paused_gc():
        return _verify(RegistryView(snapshot, view.label), snapshot, lfs, deep, progress)


def _verify(view: RegistryView, snapshot: BulkSnapshot, lfs: LfsStore, deep: bool, progress: ProgressCallback) -> VerifyReport:
    report = VerifyReport(deep=deep)
    walk = Walk(view, snapshot, report)
    strays: list[str] = []
    dirs = view.tag_dirs(strays=strays)
    names = [entry for part in in_halves(view.tags_in, dirs) for entry in part]  # all_tag_entries, maybe on two cores
    for path in strays:  # written by hand or by a tool that does not know the format version
        walk.problem(path, f"outside every image name's place in format version {view.layout.version}: no pull or listing sees it")
    walk.prepare(found for _, entries in names if not isinstance(entries, LfsregError) for _, found in entries if isinstance(found, Digest))
    for name, entries in names:
        if isinstance(entries, LfsregError):
            walk.problem(name, str(entries))
            continue
        for tag, found in entries:
            report.tags += 1
            where = f"{name}:{tag}"
            if isinstance(found, Digest):
                walk.root(found, where)
            else:
                walk.problem(where, f"tag file: {str(found).removeprefix(f'{view.label}: ')}")
    objects = [obj for obj, _ in walk.objects.values()]
    report.objects = len(objects)
    report.object_bytes = sum(o.size for o in objects)
    absent = {obj.oid: why for obj, why in lfs.probe(objects)}
    for oid, why in absent.items():
        obj, where = walk.objects[oid]
        report.problems.append(Problem(where, f"LFS object sha256:{oid} ({obj.size} bytes): {why}"))
    if deep:
        _deep(walk, lfs, absent, progress)
    return report


def _deep(walk: Walk, lfs: LfsStore, absent: dict[str, str], progress: ProgressCallback) -> None:
    """Read every layer the probe found present and check its bytes."""
    layers = [layer for layer in walk.layers.values() if layer.objects and not any(o.oid in absent for o in layer.objects)]
    if isinstance(lfs, CachedLfsStore):  # every object is downloaded afresh: the host meters it (limits.transfer)
        unique = {o.oid: o.size for layer in layers for o in layer.objects}
        check_transfer(sum(unique.values()), read_limits(walk.view).transfer, walk.view.label, "verify --deep")
    with _Objects(lfs, progress) as source:
        for group in _groups(layers):
            failed = source.fetch([o for layer in group for o in layer.objects])
            for layer in group:
                bad = next((failed[o.oid] for o in layer.objects if o.oid in failed), None)
                if bad is not None:
                    walk.problem(layer.where, bad)
                    continue
                try:
                    _check_layer(layer, source)
                except LfsregError as exc:
                    walk.problem(layer.where, str(exc))
            source.drop()


def _groups(layers: list[CheckedLayer]) -> Iterator[list[CheckedLayer]]:
    group: list[CheckedLayer] = []
    total = 0
    for layer in layers:
        group.append(layer)
        total += layer.desc.size
        if total >= DEEP_GROUP_BYTES:
            yield group
            group, total = [], 0
    if group:
        yield group


def _check_layer(layer: CheckedLayer, source: _Objects) -> None:
    """Read the layer's objects in order: each against its oid, all against the layer digest (and diff_id)."""
    desc = layer.desc
    compression = mt.layer_compression(desc.media_type)
    tap = None
    if layer.diff_id is not None and compression in ("gzip", "zstd"):
        tap = DiffIdCheck(compression, layer.diff_id, f"layer {desc.digest}")
    elif layer.diff_id is not None and compression == "none" and desc.digest != layer.diff_id:
        raise DigestMismatchError(f"layer {desc.digest}: an uncompressed layer must equal its diff_id {layer.diff_id}")
    joined = JoinedObjects(layer.objects, source.open, check_each=True)
    whole = VerifiedReader(joined, desc.digest, desc.size, f"layer {desc.digest}", tap=tap)
    while whole.read(CHUNK):
        pass
    whole.finish()


class _Objects:
    """Where a deep check reads objects: the local store's files, or fresh downloads from a remote."""

    def __init__(self, lfs: LfsStore, progress: ProgressCallback) -> None:
        self.lfs = lfs
        self.progress = progress
        self.remote = lfs if isinstance(lfs, CachedLfsStore) else None
        self._tmp: str | None = None
        self._cache: ObjectCache | None = None

    def __enter__(self) -> _Objects:
        if self.remote is not None:
            # Beside the user's cache (same file system): downloads are kept there afterwards.
            parent = os.path.dirname(self.remote.cache.root.rstrip(os.sep)) or "."
            os.makedirs(parent, exist_ok=True)
            self._tmp = tempfile.mkdtemp(prefix="lfsreg-verify-", dir=parent)
            self._cache = ObjectCache(self._tmp)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def fetch(self, objects: list[LfsObject]) -> dict[str, str]:
        """Download ``objects`` from a remote (verified on arrival); the failures, by oid."""
        if self.remote is None or self._cache is None or not objects:
            return {}
        failed: dict[str, str] = {}
        unique = list({o.oid: o for o in objects}.values())
        try:
            self.remote.remote.download(unique, self._cache, self.progress)
        except LfsregError as exc:
            # Name each object that did not arrive; the error says why for the batch.
            for obj in unique:
                if not os.path.exists(self._cache.path(obj)):
                    failed[obj.oid] = f"LFS object sha256:{obj.oid}: {exc}"
        return failed

    def open(self, obj: LfsObject) -> BinaryIO:
        if self._cache is not None:
            return self._cache.open(obj, self.lfs.label)
        return self.lfs.open(obj)

    def drop(self) -> None:
        """Move this group's downloads into the user's cache (they are verified), freeing the space."""
        if self.remote is None or self._cache is None:
            return
        root = os.path.join(self._cache.root, "objects")
        for dirpath, _, files in os.walk(root):
            for name in files:
                obj = LfsObject(name, os.path.getsize(os.path.join(dirpath, name)))
                with contextlib.suppress(OSError, LfsregError):
                    self.remote.cache.adopt(obj, os.path.join(dirpath, name))
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["Problem", "VerifyReport", "verify_registry"]
