"""Pushing images into a registry: the one orchestrator for every source.

Order of writes (c/image's ImageDestination protocol): layers are staged and verified, then
uploaded to the LFS store and checked present, and only then is one commit published that
adds manifests, configs, layer pointers and tags. A failure anywhere before the publish
leaves the registry's branch exactly as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from .. import mediatypes as mt
from ..compression import check_algorithm
from ..digest import Digest
from ..errors import BlobNotFound, InvalidImageError, LfsregError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..image import ImageSource, StagingSource
from ..layers import Compression, PreparedLayer, store_compressed, store_uncompressed, store_verbatim
from ..lfs.store import LfsStore
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, Manifest, dump_json, parse_config, parse_manifest
from ..pipeline import Turn
from ..progress import DONE, ESTIMATE, PRESENT, WAITING, ProgressCallback, ProgressEvent, no_progress
from ..registry import hints, layout
from ..registry.config import Limits
from ..registry.transaction import Publisher, subject_refs
from ..registry.view import RegistryView
from .chunking import check_limit, split_staged
from .limits import Estimate, check_storage, estimate
from .usage import billed_objects

log = logging.getLogger(__name__)
MAX_METADATA = 16 << 20


@dataclass(frozen=True, slots=True)
class PushItem:
    """One image (manifest or index) from a source, and the ``(name, tag)`` pairs to give it."""

    source: ImageSource
    root: Descriptor
    targets: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PushedImage:
    """A tag the push set."""

    name: str
    tag: str
    digest: Digest
    media_type: str


@dataclass(slots=True)
class PushResult:
    """What a push did: the tags it set, the commit, and the layer traffic.

    ``bytes_to_host`` is what the push sent to the host's LFS storage (the objects it lacked);
    ``estimate`` what the push knew before uploading (:class:`lfsreg.ops.limits.Estimate`).
    A ``dry_run`` result has the tags and digests the push would set, no commit, nothing uploaded.
    """

    images: list[PushedImage] = field(default_factory=list)
    commit: str | None = None
    layers_uploaded: int = 0
    bytes_uploaded: int = 0
    layers_reused: int = 0
    bytes_to_host: int = 0
    estimate: Estimate | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PushOptions:
    """How to store layers. ``jobs`` layers are processed at once.

    ``dry_run``: stage, verify and estimate, but upload and commit nothing. ``limits``: the
    registry's (checked before any upload). ``memo_path``: the history walk's memo
    (:mod:`lfsreg.ops.walk`).
    """

    compression: str = "zstd"
    level: int | None = None
    jobs: int = 2
    progress: ProgressCallback = no_progress
    dry_run: bool = False
    limits: Limits = field(default_factory=Limits)
    memo_path: str | None = None
    object_limit: int | None = None  # chunk layers larger than this (docs/format.md); default: limits.object
    # more changes for the push's one commit, given the tip and the tags it sets (push --sign-key: signatures)
    extra: Callable[[RegistryView, Mapping[tuple[str, str], Digest]], Mapping[str, bytes | None]] | None = None

    def __post_init__(self) -> None:
        check_limit(self.object_limit)


@dataclass(slots=True)
class _Node:
    source: ImageSource
    desc: Descriptor
    parsed: Manifest | Index
    children: list[_Node] = field(default_factory=list)
    config: bytes = b""
    diff_ids: tuple[Digest, ...] = ()
    height: int = 0  # levels of indexes below this node (0 for a manifest)


class _Push:
    def __init__(self, view: RegistryView, lfs: LfsStore, options: PushOptions) -> None:
        self.view = view
        self.lfs = lfs
        self.options = options
        self.blobs: dict[Digest, bytes] = {}
        self.jobs: dict[Digest, tuple[ImageSource, Descriptor, Digest | None]] = {}
        self.layers: dict[Digest, PreparedLayer] = {}
        self.reusable: dict[Digest, PreparedLayer] = {}
        self.nodes: dict[Digest, _Node] = {}  # every manifest and index walked, by digest
        self.finished: dict[Digest, Descriptor] = {}  # final descriptor of each walked node
        self.chunks: dict[Digest, list[LfsObject]] = {}  # layers stored as chunks, by stored digest
        self.chunk_files: list[str] = []  # their staged files
        self.compressing = threading.Lock()  # held by the layer being compressed

    def _read(self, source: ImageSource, desc: Descriptor, what: str) -> bytes:
        if desc.size > MAX_METADATA:
            raise InvalidImageError(f"{what}: {desc.digest} is too large ({desc.size} bytes) for a manifest or config")
        with source.open_blob(desc) as f:
            data = f.read(desc.size + 1)
        if len(data) != desc.size or Digest.of_bytes(data) != desc.digest:
            raise InvalidImageError(f"{what}: {desc.digest} does not match its content ({len(data)} bytes read)")
        return data

    def walk(self, source: ImageSource, desc: Descriptor, depth: int = 0) -> _Node:
        """The node of ``desc`` and everything under it; each digest is read and parsed once.

        An index may list the same child many times, and nested indexes multiply that: work
        is bounded by distinct blobs, not by paths through the graph.
        """
        what = source.label
        seen = self.nodes.get(desc.digest)
        if seen is not None:
            if seen.desc.size != desc.size:
                raise InvalidImageError(f"{what}: {desc.digest} is listed with sizes {seen.desc.size} and {desc.size}")
            if depth + seen.height > MAX_INDEX_DEPTH:
                raise InvalidImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep under {desc.digest}")
            return seen
        if depth > MAX_INDEX_DEPTH:
            raise InvalidImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep at {desc.digest}")
        data = self._read(source, desc, what)
        parsed = parse_manifest(data, f"{what}: {desc.digest}")
        node = _Node(source, desc, parsed)
        if isinstance(parsed, Index):
            node.children = [self.walk(source, child, depth + 1) for child in parsed.manifests]
            node.height = 1 + max((c.height for c in node.children), default=0)
            self.nodes[desc.digest] = node
            return node
        self.nodes[desc.digest] = node
        node.config = self._read(source, parsed.config, what)
        if not mt.is_image_config(parsed.config.media_type):
            # An OCI artifact (a Helm chart, a signature…): blobs are stored verbatim, no diff_ids.
            for layer in parsed.layers:
                self.jobs.setdefault(layer.digest, (source, layer, None))
            return node
        config = parse_config(node.config, f"{what}: config {parsed.config.digest}")
        if len(config.diff_ids) != len(parsed.layers):
            raise InvalidImageError(f"{what}: manifest {desc.digest} has {len(parsed.layers)} layers, its config {len(config.diff_ids)}")
        node.diff_ids = config.diff_ids
        for layer, diff_id in zip(parsed.layers, config.diff_ids, strict=True):
            self.jobs.setdefault(layer.digest, (source, layer, diff_id))
        return node

    def _reuse(self, desc: Descriptor, diff_id: Digest | None) -> PreparedLayer | None:
        compression = mt.layer_compression(desc.media_type)
        if compression == "none" and diff_id is not None:
            stored = self.view.stored_layer(diff_id)
            if stored is not None:
                return PreparedLayer(stored.desc, diff_id, stored.uncompressed_size, None)
        if not self.view.has_layer(desc.digest):
            return None
        if diff_id is not None and compression in ("gzip", "zstd"):
            # The registry holds the blob, but the config's diff_id for it is unchecked: only the
            # registry's own record (written when the blob was verified) may vouch for it.
            # Otherwise the layer is read and checked, as it would be by an empty registry.
            stored = self.view.stored_layer(diff_id)
            if stored is None or stored.desc.digest != desc.digest:
                return None
        return PreparedLayer(desc, diff_id, desc.size if compression == "none" else None, None)

    @staticmethod
    def _handed_over(source: ImageSource, desc: Descriptor) -> PreparedLayer | None:
        """A layer the source staged itself (its optional capability), if it did."""
        return source.staged_layer(desc) if isinstance(source, StagingSource) else None

    def _store(self, source: ImageSource, desc: Descriptor, diff_id: Digest | None) -> PreparedLayer:
        ready = self._handed_over(source, desc) or self.reusable.get(desc.digest)
        if ready is not None:
            return ready
        what = f"{source.label}: layer {desc.digest}"
        opts = self.options
        if diff_id is None:
            with source.open_blob(desc) as raw:
                return store_verbatim(raw, desc, self.lfs.staging, opts.progress, what)
        arrived = mt.layer_compression(desc.media_type)
        if arrived is None:
            raise InvalidImageError(f"{what}: unsupported layer media type {desc.media_type!r}")
        if arrived == "none" and desc.digest != diff_id:
            raise InvalidImageError(f"{what}: uncompressed layer does not match its diff_id {diff_id}")
        # One layer is zstd-compressed at a time, on every core (compression.compress_threads):
        # two at once only add threads that evict each other's caches (measured: 12 % more CPU
        # and slower for a 1.3 GB push on 2 cores). Other layers are read meanwhile, and the next
        # one starts as soon as this one's last frames are with the pool (its turn is over).
        turn = Turn(self.compressing if arrived == "none" and opts.compression == "zstd" else None)
        with turn, source.open_blob(desc) as raw:
            if arrived == "none":
                target = Compression(opts.compression, opts.level)
                return store_uncompressed(raw, desc, target, self.lfs.staging, opts.progress, what, turn.over)
            return store_compressed(raw, desc, arrived, diff_id, self.lfs.staging, opts.progress, what)

    def find_reusable(self) -> None:
        """Layers the registry already holds (per its tree, confirmed by one LFS query)."""
        candidates = {
            d: r
            for d, (source, desc, diff_id) in self.jobs.items()
            if self._handed_over(source, desc) is None and (r := self._reuse(desc, diff_id)) is not None
        }
        objects = {d: self.objects_of(r) for d, r in candidates.items()}
        missing = {o.oid for o in self.lfs.missing([o for objs in objects.values() for o in objs])}
        self.reusable = {d: r for d, r in candidates.items() if not any(o.oid in missing for o in objects[d])}

    def objects_of(self, layer: PreparedLayer) -> list[LfsObject]:
        """The LFS objects that hold ``layer``: its chunks if it is (or will be) stored so, else its one object."""
        chunks = self.chunks.get(layer.desc.digest)
        if chunks is not None:
            return chunks
        if layer.staged is None and self.view.has_layer(layer.desc.digest):
            with contextlib.suppress(LfsregError):  # a damaged pointer: the object by the layer's digest
                return self.view.layer_objects(layer.desc)
        return [layer.lfs_object]

    def store_layers(self) -> None:
        self.find_reusable()
        for digest, (_, desc, _) in self.jobs.items():  # announce the whole job to progress bars
            phase = PRESENT if digest in self.reusable else WAITING
            self.options.progress(ProgressEvent(str(desc.digest), "push", desc.size, phase=phase))
        with ThreadPoolExecutor(max(1, self.options.jobs), thread_name_prefix="lfsreg-layer") as pool:
            ordered = sorted(self.jobs.items(), key=lambda kv: -kv[1][1].size)
            futures = {d: pool.submit(self._store, *job) for d, job in ordered}
            try:
                for digest, future in futures.items():
                    self.layers[digest] = future.result()
            except BaseException:
                for future in futures.values():
                    future.cancel()
                wait(list(futures.values()))
                for future in futures.values():
                    if not future.cancelled() and future.exception() is None:
                        layer = future.result()
                        self.layers[layer.desc.digest] = layer
                self.discard()
                raise

    def discard(self) -> None:
        """Remove staged files that were not uploaded."""
        for path in [layer.staged for layer in self.layers.values() if layer.staged] + self.chunk_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def finish(self, node: _Node) -> Descriptor:
        """Final descriptor of ``node``, rewriting its document if any layer or child changed."""
        done = self.finished.get(node.desc.digest)
        if done is None:
            done = self.finished[node.desc.digest] = self._finish(node)
        return done

    def _finish(self, node: _Node) -> Descriptor:
        if isinstance(node.parsed, Index):
            children = [self.finish(c) for c in node.children]
            if all(c.digest == o.digest for c, o in zip(children, node.parsed.manifests, strict=True)):
                return self._keep(node)
            obj = dict(node.parsed.obj)
            obj["manifests"] = [
                {**o.raw, "mediaType": c.media_type, "digest": str(c.digest), "size": c.size}
                for c, o in zip(children, node.parsed.manifests, strict=True)
            ]
            if any(c.media_type == mt.OCI_MANIFEST for c in children):
                obj["mediaType"] = mt.OCI_INDEX
            return self._add(obj, node)
        manifest = node.parsed
        self.blobs[manifest.config.digest] = node.config
        stored = [self.layers[layer.digest].desc for layer in manifest.layers]
        if all(s == o for s, o in zip(stored, manifest.layers, strict=True)):
            return self._keep(node)
        obj = dict(manifest.obj)
        obj["schemaVersion"] = 2
        obj["mediaType"] = mt.OCI_MANIFEST
        config = manifest.config
        obj["config"] = {**config.raw, "mediaType": mt.oci_equivalent(config.media_type)}
        obj["layers"] = [
            {**o.raw, "mediaType": mt.oci_equivalent(s.media_type), "digest": str(s.digest), "size": s.size}
            for s, o in zip(stored, manifest.layers, strict=True)
        ]
        return self._add(obj, node)

    def _keep(self, node: _Node) -> Descriptor:
        self.blobs[node.desc.digest] = node.parsed.data
        return Descriptor(node.parsed.media_type, node.desc.digest, node.desc.size, node.desc.raw)

    def _add(self, obj: dict[str, object], node: _Node) -> Descriptor:
        data = dump_json(obj)
        digest = Digest.of_bytes(data)
        self.blobs[digest] = data
        return Descriptor(str(obj["mediaType"]), digest, len(data), node.desc.raw)


def _paths(
    lay: layout.Layout, layers: list[tuple[Descriptor, Digest | None]], blobs: Iterable[Digest], tags: Iterable[tuple[str, str]]
) -> list[str]:
    """What a push reads and writes, to prefetch: layer pointers and diffids records, manifests and configs, tag files."""
    out = [lay.blob_path(d) for d in blobs] + [p for n, t in tags for p in (lay.tag_path(n, t), hints.path(lay, n))]
    for desc, diff_id in layers:
        out += [lay.layer_path(desc.digest), *([lay.diffid_path(diff_id)] if diff_id is not None else [])]
    return out


def _changes(push: _Push, tags: Mapping[tuple[str, str], Digest], view: RegistryView) -> dict[str, bytes | None]:
    lay = view.layout
    changes: dict[str, bytes | None] = {lay.blob_path(d): data for d, data in push.blobs.items()}
    for layer in push.layers.values():
        digest = layer.desc.digest
        if view.has_layer(digest) and view.snapshot.read(lay.layer_path(digest)) is None:
            continue  # stored as chunks already (by us, or by a concurrent push): keep them
        chunks = push.chunks.get(digest)
        if chunks is None:
            changes[lay.layer_path(digest)] = lfs_pointer.encode(layer.lfs_object)
        elif not view.has_layer(digest):
            changes.update({lay.chunk_path(digest, i): lfs_pointer.encode(c) for i, c in enumerate(chunks)})
            changes.update(lay.chunked_marker())
        if layer.staged is not None and layer.diff_id is not None and view.stored_layer(layer.diff_id) is None:
            record = layout.DiffIdRecord(layer.desc, layer.uncompressed_size)
            changes[lay.diffid_path(layer.diff_id)] = layout.diffid_content(record)
    for (name, tag), digest in tags.items():
        changes[lay.tag_path(name, tag)] = layout.tag_content(digest)
    return changes


def _staged(push: _Push, lfs: LfsStore, limit: int | None) -> list[tuple[LfsObject, str]]:
    """The staged files to upload: one per new layer, or its chunks when it is larger than ``limit``."""
    staged: list[tuple[LfsObject, str]] = []
    for layer in push.layers.values():
        if layer.staged is None:
            continue
        if limit is None or layer.desc.size <= limit or push.view.has_layer(layer.desc.digest):
            staged.append((layer.lfs_object, layer.staged))
            continue
        parts = split_staged(layer, limit, lfs)
        push.chunks[layer.desc.digest] = [obj for obj, _ in parts]  # the layer's staged file became these
        push.chunk_files.extend(path for _, path in parts)
        staged.extend(parts)
    return staged


def push_images(publisher: Publisher, view: RegistryView, lfs: LfsStore, items: list[PushItem], options: PushOptions) -> PushResult:
    """Push ``items`` in one commit on top of ``view``, the publisher's latest view.

    The order of writes is in the module docstring.

    A source that stages its own layers (:class:`lfsreg.image.StagingSource`) hands them over
    staged and verified; every other layer is read through its source's ``open_blob``.
    """
    check_algorithm(options.compression)
    push = _Push(view, lfs, options)
    nodes = [(item, push.walk(item.source, item.root)) for item in items]
    # a remote fetched in part: the trees the reuse checks read and the commit rebuilds, a level an exchange
    view.prefetch_files(
        _paths(view.layout, [(desc, diff_id) for _, desc, diff_id in push.jobs.values()], (), [t for i in items for t in i.targets])
    )
    push.store_layers()
    try:
        return _publish(push, publisher, lfs, items, nodes, options)
    finally:
        push.discard()


def _publish(
    push: _Push, publisher: Publisher, lfs: LfsStore, items: list[PushItem], nodes: list[tuple[PushItem, _Node]], options: PushOptions
) -> PushResult:
    result = PushResult()
    tags: dict[tuple[str, str], Digest] = {}
    for item, node in nodes:
        final = push.finish(node)
        for name, tag in item.targets:
            tags[(name, tag)] = final.digest
            result.images.append(PushedImage(name, tag, final.digest, final.media_type))
    # layers over the host's object limit become chunks first: the estimate counts what is uploaded
    limit = options.object_limit if options.object_limit is not None else check_limit(options.limits.object)
    staged = _staged(push, lfs, limit)
    result.estimate = _estimate(push, publisher, lfs, staged, options)
    result.dry_run = options.dry_run
    if options.dry_run:  # push_images discards the staged files and chunks
        result.layers_reused = sum(1 for layer in push.layers.values() if not layer.staged)
        return result
    # progress lines are keyed by the source's layer digest, also while the stored one uploads
    source_keys = {f"sha256:{layer.lfs_object.oid}": str(digest) for digest, layer in push.layers.items()}
    lfs.upload(staged, lambda e: options.progress(replace(e, key=source_keys.get(e.key, e.key))))
    missing = lfs.missing([o for layer in push.layers.values() for o in push.objects_of(layer)])
    if missing:
        raise BlobNotFound(f"{lfs.label}: LFS objects missing after upload: {', '.join(o.oid[:12] for o in missing)}")
    uploaded = sum(1 for layer in push.layers.values() if layer.staged)
    result.layers_uploaded = uploaded
    result.bytes_uploaded = sum(obj.size for obj, _ in staged)
    result.layers_reused = len(push.layers) - uploaded
    result.bytes_to_host = result.estimate.bytes
    names = subject_refs([f"{n}:{t}" for n, t in tags])
    body = "\n".join(f"{n}:{t} {d}" for (n, t), d in tags.items())
    extra = options.extra

    def build(view: RegistryView) -> dict[str, bytes | None]:
        view.prefetch_files(_paths(view.layout, [(layer.desc, layer.diff_id) for layer in push.layers.values()], push.blobs, tags))
        return {**_changes(push, tags, view), **(extra(view, tags) if extra is not None else {})}

    result.commit = publisher.publish(build, f"push {names}\n\n{body}\n")
    return result


def _estimate(push: _Push, publisher: Publisher, lfs: LfsStore, staged: list[tuple[LfsObject, str]], options: PushOptions) -> Estimate:
    """What the push will add (the objects the host lacks), reported and checked against the limits before any upload."""
    lacking = {o.oid: o.size for o in lfs.missing([obj for obj, _ in staged])} if staged else {}
    layers = {o.oid: o.size for layer in push.layers.values() for o in push.objects_of(layer)}
    git, tip = publisher.backend.git, push.view.snapshot.commit
    billed: dict[str, int]
    if git.partial() and not options.limits.storage:
        # a mirror fetched in part: the history's pointers are not fetched for a figure no limit checks
        billed, complete = {}, False
    else:
        if tip is not None and git.partial():
            publisher.backend.complete(tip)  # limits.storage: the whole history is read, as before partial fetch
        billed, complete = billed_objects(git, tip, lfs.label, options.memo_path)
    est = estimate(lacking, layers, billed, complete, options.limits)
    options.progress(ProgressEvent("registry", ESTIMATE, est.bytes, phase=DONE, detail=est.to_json()))
    check_storage(est, publisher.label)
    return est
