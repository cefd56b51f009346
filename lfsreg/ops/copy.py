"""Copying images between two registries: only what the destination lacks, in one commit.

:func:`copy_images` reads the chosen tags of the source (every blob checked against its
digest as it is read), asks the destination's LFS store which objects it lacks (one batch
query), and moves only those: each is read from the source's store (a remote's is downloaded
into the verified cache first, held to the source's ``limits.transfer`` as a pull is), staged
for the destination while its oid and size are checked, and uploaded. Only when the
destination holds every object is one commit published there through the same
:class:`lfsreg.registry.transaction.Publisher` a push uses (compare-and-swap, re-applied if
the destination moved). No history is copied: the destination gets the tags as they are now.

Layers keep the form the source stores them in (one object, or chunks: docs/format.md); a
layer the destination already holds in either form is not written again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, ImageNotFound, InvalidImageError, LfsregError, NotFoundError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..integrity import VerifiedReader
from ..lfs.store import CachedLfsStore, LfsStore
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, parse_config, parse_manifest
from ..progress import DONE, ProgressCallback, ProgressEvent, no_progress
from ..reference import ImageRef
from ..registry import layout
from ..registry.config import object_limit as configured_object_limit
from ..registry.config import read_limits
from ..registry.transaction import Publisher, subject_refs
from ..registry.view import RegistryView
from ..signing.cosign import signature_tag
from ..staging import forget
from .chunking import check_limit, split_reader
from .limits import check_transfer

#: Objects staged for the destination at once (their staged copies are consumed by each upload).
GROUP_BYTES = 1 << 30
GROUP_OBJECTS = 100


@dataclass(slots=True)
class CopyResult:
    """What a copy did: the tags it set, the commit, and the LFS traffic."""

    tags: list[tuple[str, str, Digest]] = field(default_factory=list)
    commit: str | None = None
    objects: int = 0  # LFS objects the copied tags need
    objects_copied: int = 0  # of which the destination lacked
    bytes_copied: int = 0  # uploaded to the destination
    bytes_downloaded: int = 0  # fetched from the source's host (not from the local cache)


@dataclass(slots=True)
class _Layer:
    desc: Descriptor
    objects: list[LfsObject]
    pointers: dict[str, bytes]  # pointer files as the source stores them: "" (whole) or each chunk's name -> content
    record: tuple[Digest, bytes] | None  # the source's diffids/ record for it (diff_id, content), if any


class _Collect:
    """Everything under the chosen roots of the source: blobs verbatim, layers with their pointers."""

    def __init__(self, view: RegistryView) -> None:
        self.view = view
        self.blobs: dict[Digest, bytes] = {}
        self.layers: dict[Digest, _Layer] = {}

    def node(self, digest: Digest, what: str, depth: int = 0) -> None:
        if digest in self.blobs:
            return
        if depth > MAX_INDEX_DEPTH:
            raise InvalidImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep at {digest}")
        data = self.view.blob(digest)
        self.blobs[digest] = data
        parsed = parse_manifest(data, f"{what}: {digest}")
        if isinstance(parsed, Index):
            for child in parsed.manifests:
                self.node(child.digest, what, depth + 1)
            return
        config = self.view.blob(parsed.config.digest)
        self.blobs[parsed.config.digest] = config
        diff_ids: tuple[Digest | None, ...] = (None,) * len(parsed.layers)
        if mt.is_image_config(parsed.config.media_type):
            diff_ids = parse_config(config, f"{what}: config {parsed.config.digest}").diff_ids
            if len(diff_ids) != len(parsed.layers):
                raise InvalidImageError(f"{what}: manifest {digest} has {len(parsed.layers)} layers, its config {len(diff_ids)}")
        for desc, diff_id in zip(parsed.layers, diff_ids, strict=True):
            self.layer(desc, diff_id)

    def layer(self, desc: Descriptor, diff_id: Digest | None) -> None:
        if mt.stored_in_git(desc.media_type):  # a signature's payload: a git file, copied as one (docs/format.md)
            data = self.view.blob(desc.digest)
            if len(data) != desc.size:
                raise InvalidImageError(f"{self.view.label}: payload {desc.digest} has {len(data)} bytes, its descriptor says {desc.size}")
            self.blobs[desc.digest] = data
            return
        if desc.digest in self.layers:
            return
        objects = self.view.layer_objects(desc)  # checked: one pointer of the layer, or chunks adding up to it
        pointers = _pointers(self.view, desc)
        record = None
        if diff_id is not None:
            stored = self.view.stored_layer(diff_id)
            if stored is not None and stored.desc.digest == desc.digest:
                record = (diff_id, layout.diffid_content(stored))
        self.layers[desc.digest] = _Layer(desc, objects, pointers, record)


def selected_tags(view: RegistryView, images: list[str]) -> list[tuple[str, str, Digest]]:
    """``(name, tag, digest)`` of every live tag, or of those ``images`` names (``NAME:TAG`` or a whole ``NAME``).

    Raises :class:`ImageNotFound` for a name or tag the source lacks, before anything is copied.
    """
    if not images:
        every = [(name, tag, digest) for name in view.names() for tag, digest in view.tags(name)]
        if not every:
            raise NotFoundError(f"{view.label}: no tags to copy", hint=f"see what it holds with: lfsreg images {view.label}")
        return every
    out: dict[tuple[str, str], Digest] = {}
    for image in images:
        ref = ImageRef.parse(image) if ":" in image.rsplit("/", 1)[-1] or "@" in image else None
        if ref is None:
            tags = view.tags(ImageRef.parse(image + ":latest").name)
            if not tags:
                raise ImageNotFound(f"{view.label}: no image named {image}")
            out.update({(ImageRef.parse(image + ":latest").name, tag): digest for tag, digest in tags})
            continue
        if ref.tag is None:
            raise ImageNotFound(f"{image}: copy takes NAME or NAME:TAG (a digest names no tag to give it)")
        out[(ref.name, ref.tag)] = view.resolve(ref)
    return [(name, tag, digest) for (name, tag), digest in out.items()]


def _tag_refs(images: list[str]) -> list[ImageRef]:
    """The ``NAME:TAG`` references among ``images`` (what is not one is left to :func:`selected_tags` to refuse or expand)."""
    out = []
    for image in images:
        with contextlib.suppress(LfsregError):
            ref = ImageRef.parse(image)
            if ref.tag is not None:
                out.append(ref)
    return out


def with_signatures(view: RegistryView, tags: list[tuple[str, str, Digest]]) -> list[tuple[str, str, Digest]]:
    """``tags`` and the signature tags (``NAME:sha256-<hex>.sig``, docs/format.md) the source holds for their digests.

    A copied image keeps its signatures, as ``cosign copy`` keeps them (a copy of every tag has them already).
    """
    have = {(n, t) for n, t, _ in tags}
    out = list(tags)
    for name, _, digest in tags:
        tag = signature_tag(digest)
        if (name, tag) in have:
            continue
        found = view.snapshot.read(view.layout.tag_path(name, tag))
        signed = layout.parse_tag(found) if found is not None else None
        if signed is not None:
            out.append((name, tag, signed))
            have.add((name, tag))
    return out


def _groups(objects: list[LfsObject]) -> Iterator[list[LfsObject]]:
    group: list[LfsObject] = []
    total = 0
    for obj in objects:
        group.append(obj)
        total += obj.size
        if total >= GROUP_BYTES or len(group) >= GROUP_OBJECTS:
            yield group
            group, total = [], 0
    if group:
        yield group


def _move(objects: list[LfsObject], src: LfsStore, dst: LfsStore, progress: ProgressCallback, result: CopyResult) -> None:
    """Copy ``objects`` from ``src`` to ``dst``: fetched, staged (oid and size checked), uploaded."""
    lock = threading.Lock()

    def fetching(event: ProgressEvent) -> None:
        if event.action == "download" and event.phase == DONE and event.total:
            with lock:  # transfer workers report from their threads
                result.bytes_downloaded += event.total
        progress(event)

    for group in _groups(objects):
        src.fetch(group, fetching)
        staged: list[tuple[LfsObject, str]] = []
        for obj in group:
            with dst.staging() as (out, path):
                out.expect(obj.oid, obj.size, what=f"{src.label}: LFS object sha256:{obj.oid}")
                with src.open(obj) as f:
                    out.copy_from(f)
            staged.append((obj, path))
        dst.upload(staged, progress)
        result.objects_copied += len(group)
        result.bytes_copied += sum(o.size for o in group)


def _rechunk(
    layer: _Layer, limit: int, src: LfsStore, dst: LfsStore, progress: ProgressCallback, result: CopyResult
) -> tuple[list[LfsObject], dict[str, bytes]]:
    """Store a whole source layer in the destination as chunks of at most ``limit``; its chunks and their pointers."""
    (obj,) = layer.objects
    src.fetch([obj], progress)
    what = f"{src.label}: layer {layer.desc.digest}"
    with src.open(obj) as f:
        reader = VerifiedReader(f, layer.desc.digest, layer.desc.size, what)
        parts = split_reader(reader, layer.desc.size, limit, dst, what)
        try:
            reader.finish()  # the chunks are the layer the manifest names
        except BaseException:
            for _, path in parts:
                forget(path, remove=True)
            raise
    try:
        lacking = {o.oid for o in dst.missing([o for o, _ in parts])}
        dst.upload([(o, path) for o, path in parts if o.oid in lacking], progress)
    finally:
        for _, path in parts:
            forget(path, remove=True)
    result.objects_copied += len(lacking)
    result.bytes_copied += sum(o.size for o, _ in parts if o.oid in lacking)
    objects = [o for o, _ in parts]
    return objects, dict(zip(layout.chunk_names(len(objects)), map(lfs_pointer.encode, objects), strict=True))


def copy_images(
    src_view: RegistryView,
    src_lfs: LfsStore,
    dst: Publisher,
    dst_lfs: LfsStore,
    images: list[str],
    *,
    progress: ProgressCallback = no_progress,
    object_limit: int | None = None,
) -> CopyResult:
    """Copy the tags ``images`` select (:func:`selected_tags`) from the source into ``dst``, in one commit.

    The order of writes is a push's:
    LFS objects first (and checked present), then the commit. A layer the source holds as one
    object larger than ``object_limit`` (the destination's ``limits.object``) is stored there
    as chunks (docs/format.md); default: the destination's own ``limits.object``.

    Raises:
        BlobNotFound, CorruptContentError: a source blob or object missing or damaged (nothing published).
        ConcurrentUpdateError: the destination kept moving under the commit.
    """
    # a remote source read in part: its tags, then what their pull hints name at once, the rest a level an exchange
    src_view.prefetch_pull(_tag_refs(images))
    tags = with_signatures(src_view, selected_tags(src_view, images))  # before the destination is read: bad names write nothing
    src_view.prefetch_pull([ImageRef(name, tag) for name, tag, _ in tags])  # every tag of a NAME, signatures: fetched only now
    dst_view = dst.view()
    if object_limit is None:
        object_limit = check_limit(configured_object_limit(dst_view))
    result = CopyResult(tags=list(tags))
    collect = _Collect(src_view)
    for name, tag, digest in tags:
        collect.node(digest, f"{src_view.label}: {name}:{tag}")
    held = {d: _held(dst_view, layer.desc) for d, layer in collect.layers.items()}
    asked = {o.oid: o for layer in collect.layers.values() for o in layer.objects}
    asked.update({o.oid: o for objects in held.values() for o in objects or ()})
    absent = {o.oid for o in dst_lfs.missing(list(asked.values()))}
    # A layer the destination holds (pointers sound, objects present) stays as it is there.
    keep = {d for d, objects in held.items() if objects is not None and not any(o.oid in absent for o in objects)}
    # A layer the source holds whole but the destination's limit does not allow is cut into chunks.
    split = {
        d
        for d, layer in collect.layers.items()
        if d not in keep and object_limit is not None and len(layer.objects) == 1 and layer.desc.size > object_limit
    }
    needed = {o.oid: o for d, layer in collect.layers.items() for o in (held[d] or []) if d in keep}
    needed.update({o.oid: o for d, layer in collect.layers.items() if d not in keep | split for o in layer.objects})
    result.objects = len(needed)
    lacking = sorted((o for o in needed.values() if o.oid in absent), key=lambda o: -o.size)
    _check_download(src_view, src_lfs, [*lacking, *(o for d in split for o in collect.layers[d].objects)])
    _move(lacking, src_lfs, dst_lfs, progress, result)
    for digest in split:
        layer = collect.layers[digest]
        layer.objects, layer.pointers = _rechunk(layer, object_limit or 0, src_lfs, dst_lfs, progress, result)
        needed.update({o.oid: o for o in layer.objects})
    still = dst_lfs.missing(list(needed.values()))
    if still:
        raise BlobNotFound(f"{dst_lfs.label}: LFS objects missing after upload: {', '.join(o.oid[:12] for o in still)}")
    kept_pointers = {d: _pointers(dst_view, collect.layers[d].desc) for d in keep}

    def build(view: RegistryView) -> dict[str, bytes | None]:
        lay = view.layout  # the destination's: its paths, whatever the source's layout
        changes: dict[str, bytes | None] = {lay.blob_path(d): data for d, data in collect.blobs.items()}
        chunked = False
        for digest, layer in collect.layers.items():
            if digest in keep:
                if not view.has_layer(digest):  # gone since (a concurrent gc): put back what was there
                    changes.update(_placed(lay, digest, kept_pointers[digest]))
                continue
            changes.update(dict.fromkeys(_placed(lay, digest, _pointers(view, layer.desc))))  # whatever is there now goes
            changes.update(_placed(lay, digest, layer.pointers))
            chunked = chunked or "" not in layer.pointers
            if layer.record is not None and view.snapshot.read(path := lay.diffid_path(layer.record[0])) is None:
                changes[path] = layer.record[1]
        for name, tag, digest in tags:
            changes[lay.tag_path(name, tag)] = layout.tag_content(digest)
        if chunked:
            changes.update(lay.chunked_marker())
        return changes

    names = subject_refs([f"{n}:{t}" for n, t, _ in tags])
    body = "\n".join(f"{n}:{t} {d}" for n, t, d in tags)
    result.commit = dst.publish(build, f"copy {names} from {src_view.label}\n\n{body}\n")
    return result


def _check_download(view: RegistryView, lfs: LfsStore, objects: list[LfsObject]) -> None:
    """Refuse a copy that would download more from the source's host than its ``limits.transfer`` allows.

    As a pull is (docs/limits.md): before any object moves, counting only what the local cache
    does not validly hold; past 80 % of the limit it warns. A local source has no host to meter.
    """
    if not isinstance(lfs, CachedLfsStore):
        return
    pending = {o.oid: o.size for o in objects if not lfs.cache.valid(o)}
    check_transfer(sum(pending.values()), read_limits(view).transfer, view.label, "this copy")


def _held(view: RegistryView, desc: Descriptor) -> list[LfsObject] | None:
    """The objects of a layer as ``view`` stores it, or ``None`` if it holds none (or a damaged record of it)."""
    if not view.has_layer(desc.digest):
        return None
    try:
        return view.layer_objects(desc)
    except LfsregError:
        return None


def _pointers(view: RegistryView, desc: Descriptor) -> dict[str, bytes]:
    """The pointer files of a layer in ``view``: its one pointer (name ``""``), or its chunks (by name) -> content."""
    path = view.layout.layer_path(desc.digest)
    data = view.read(path)
    if data is not None:
        return {"": data}
    return {name: view.snapshot.blob(sha, f"{path}/{name}") for name, is_dir, sha in view.snapshot.listdir(path) if not is_dir}


def _placed(lay: layout.Layout, digest: Digest, pointers: dict[str, bytes]) -> dict[str, bytes]:
    """:func:`_pointers` of layer ``digest`` at their paths in a registry of layout ``lay``."""
    path = lay.layer_path(digest)
    return {f"{path}/{name}" if name else path: data for name, data in pointers.items()}
