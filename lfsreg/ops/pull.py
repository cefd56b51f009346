"""Pulling images out of a registry into a docker-archive, an OCI layout or an OCI archive.

Every byte is verified on the way out: manifests and configs against their digests, layers
against their LFS oid and size and, after decompression, against the config's diff_ids. The
output appears only when everything checked out (written under a temporary name, then renamed).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import logging
import platform as _platform
import zlib
from collections.abc import Callable, Collection

import zstandard

from .. import mediatypes as mt
from ..compression import decompressing_reader
from ..digest import CHUNK, Digest
from ..errors import BlobNotFound, DigestMismatchError, ImageNotFound, InvalidImageError, UsageError
from ..formats.lfs_pointer import LfsObject
from ..image import ArchiveDestination, ArchiveImage, Blob, HeldBlobs, ImageDestination, LayoutImage
from ..integrity import DiffIdCheck, VerifiedReader, Verifying
from ..lfs.store import LfsStore
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, Manifest, parse_config, parse_manifest
from ..pipeline import ReadAhead
from ..progress import PRESENT, WAITING, ProgressCallback, ProgressEvent, no_progress
from ..reference import ImageRef
from ..registry.view import RegistryView
from ..zstd_frames import declared_size
from .chunking import JoinedObjects

log = logging.getLogger(__name__)


def host_platform() -> str:
    """``linux/<arch>`` of this machine, in OCI architecture names."""
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux/{arch}"


class _Reader:
    """Opens registry blobs as verifying readers, reporting progress."""

    def __init__(self, view: RegistryView, lfs: LfsStore, progress: ProgressCallback, trust_records: bool = True) -> None:
        self.view = view
        self.lfs = lfs
        self.progress = progress
        self.trust_records = trust_records  # take uncompressed sizes from diffids/ records
        self.objects: dict[str, LfsObject] = {}  # every layer object the output will read
        self.layers: dict[Digest, tuple[int, list[str]]] = {}  # layer -> its size and its objects' oids

    def prefetch(self, held: Collection[Digest] = ()) -> None:
        """Bring every layer the output needs into local reach (a remote store's cache).

        Layers in ``held`` (the destination has them) are not fetched: each gets one
        :data:`PRESENT` event instead.
        """
        skipped = {d: self.layers[d] for d in held if d in self.layers}
        wanted = {oid for d, (_, oids) in self.layers.items() if d not in skipped for oid in oids}
        objects = sorted((o for oid, o in self.objects.items() if oid in wanted), key=lambda o: -o.size)
        for digest, (size, _) in skipped.items():
            self.progress(ProgressEvent(str(digest), "pull", size, phase=PRESENT))
        for obj in objects:  # announce the whole job to progress bars
            self.progress(ProgressEvent(f"sha256:{obj.oid}", "pull", obj.size, phase=WAITING))
        self.lfs.fetch(objects, self.progress)

    def metadata(self, desc: Descriptor) -> Blob:
        data = self.view.blob(desc.digest)
        return Blob(desc, lambda: VerifiedReader(io.BytesIO(data), desc.digest, desc.size, f"blob {desc.digest}"))

    def want(self, desc: Descriptor) -> None:
        """Note ``desc``'s objects as ones the output reads (:meth:`prefetch` fetches them)."""
        objects = self.view.layer_objects(desc)
        for obj in objects:
            self.objects[obj.oid] = obj
        self.layers[desc.digest] = (desc.size, [obj.oid for obj in objects])

    def _layer_stream(self, desc: Descriptor, tap: DiffIdCheck | None = None) -> VerifiedReader:
        objects = self.view.layer_objects(desc)
        opened = self.lfs.open(objects[0]) if len(objects) == 1 else JoinedObjects(objects, self.lfs.open)
        raw = _Counting(opened, self.progress, str(desc.digest), desc.size)
        return VerifiedReader(raw, desc.digest, desc.size, f"layer {desc.digest}", tap=tap)

    def stored_layer(self, desc: Descriptor, diff_id: Digest | None) -> Blob:
        """The layer as stored; its diff_id (if any) is checked too, by decompressing alongside."""
        self.want(desc)
        compression = mt.layer_compression(desc.media_type) or "none"
        if diff_id is None:
            return Blob(desc, lambda: ReadAhead(self._layer_stream(desc)))

        if compression == "none":
            if desc.digest != diff_id:
                raise DigestMismatchError(f"layer {desc.digest}: an uncompressed layer must equal its diff_id {diff_id}")
            return Blob(desc, lambda: ReadAhead(self._layer_stream(desc)))

        def opener() -> Verifying:  # read, hashed and decompressed to check the diff_id ahead of the writer
            check = DiffIdCheck(compression, diff_id, f"layer {desc.digest}")
            return ReadAhead(self._layer_stream(desc, check), spread=compression == "zstd")

        return Blob(desc, opener)

    def plain_layer(self, desc: Descriptor, diff_id: Digest) -> Blob:
        """The layer decompressed to a plain tar (digest == diff_id), for ``docker load``.

        Its objects are fetched already (:meth:`want`, then :meth:`prefetch`): its size may be read from them.
        """
        self.want(desc)
        compression = mt.layer_compression(desc.media_type) or "none"
        if compression == "none":
            if desc.digest != diff_id:
                raise DigestMismatchError(f"layer {desc.digest}: an uncompressed layer must equal its diff_id {diff_id}")
            return Blob(Descriptor(mt.OCI_LAYER, diff_id, desc.size), lambda: ReadAhead(self._layer_stream(desc)))
        size, recorded = self._uncompressed_size(desc, diff_id, compression)

        def opener() -> Verifying:
            # Every stage on a thread of its own, so a layer spreads over the cores (docs/format.md,
            # *Reading*): one reads and hashes the stored blob, a pool decodes its zstd frames, one
            # hashes the plain bytes in order (against the diff_id), and the writer only writes.
            # finish() verifies both digests before the writer's output can be published.
            inner = ReadAhead(self._layer_stream(desc), name="lfsreg-read")
            plain = decompressing_reader(compression, inner)  # type: ignore[arg-type]
            if recorded:
                plain = _RecordedSize(plain, size, f"layer {diff_id}")
            verified = VerifiedReader(plain, diff_id, size, f"layer {diff_id}", inner)
            return ReadAhead(verified, name="lfsreg-decompress", spread=compression == "zstd")

        return Blob(Descriptor(mt.OCI_LAYER, diff_id, size), opener)

    def _uncompressed_size(self, desc: Descriptor, diff_id: Digest, compression: str) -> tuple[int, bool]:
        """The layer's size decompressed, and whether it is a ``diffids/`` record's word for it.

        A zstd layer whose frames declare their sizes (lfsreg writes them so) is sized from its
        frame headers, in its fetched object: no record is read, so a pull from a remote fetched
        in part reads no ``diffids/`` path for it (:meth:`RegistryView.prefetch_pull`).
        """
        if compression == "zstd" and (declared := self._declared_size(desc)) is not None:
            return declared, False
        stored = self.view.stored_layer(diff_id) if self.trust_records else None
        if stored is not None and stored.uncompressed_size is not None and stored.desc.digest == desc.digest:
            return stored.uncompressed_size, True
        # Layers pushed by other tools carry no record: measure by decompressing once (fetched: :meth:`prefetch`).
        reader = decompressing_reader(compression, self._layer_stream(desc))  # type: ignore[arg-type]
        total = 0
        try:
            while chunk := reader.read(CHUNK):
                total += len(chunk)
        except (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError) as exc:
            raise DigestMismatchError(f"layer {desc.digest}: corrupt {compression} data ({exc})") from exc
        return total, False

    def _declared_size(self, desc: Descriptor) -> int | None:
        """The size a zstd layer's frames declare (read from their headers, across its chunks), or None."""
        objects = self.view.layer_objects(desc)
        starts = list(itertools.accumulate((o.size for o in objects), initial=0))  # chunks: the stream's pieces, in order
        with contextlib.ExitStack() as stack:
            try:
                files = [stack.enter_context(self.lfs.open(o)) for o in objects]

                def read_at(pos: int, n: int) -> bytes:
                    out, i = [], bisect.bisect_right(starts, pos) - 1
                    while n > 0 and i < len(files):
                        files[i].seek(pos - starts[i])
                        piece = files[i].read(min(n, starts[i + 1] - pos))
                        if not piece:
                            break
                        out.append(piece)
                        pos, n, i = pos + len(piece), n - len(piece), i + 1
                    return b"".join(out)

                return declared_size(read_at, starts[-1])
            except (zstandard.ZstdError, BlobNotFound, OSError):
                return None  # measured by decompressing, which names what is wrong


class _RecordSizeWrong(DigestMismatchError):
    """A ``diffids/`` record's ``uncompressedSize`` disagreed with the layer's content."""


class _RecordedSize:
    """Counts a decompressed layer against the size its ``diffids/`` record gave."""

    def __init__(self, source: object, size: int, what: str) -> None:
        self._source = source
        self._size = size
        self._what = what
        self._count = 0

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, fewer only at the end (tar writers take a short read for the end)."""
        parts: list[bytes] = []
        got = 0
        while n < 0 or got < n:
            chunk: bytes = self._source.read(n - got if n >= 0 else -1)  # type: ignore[attr-defined]
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            if n < 0:
                break
        self._count += got
        ended = n < 0 or got < n
        if self._count > self._size or (ended and self._count < self._size):
            raise _RecordSizeWrong(f"{self._what}: its diffids record says {self._size} bytes uncompressed, the content differs")
        return b"".join(parts)


class _Counting:
    def __init__(self, raw: object, progress: ProgressCallback, key: str, total: int) -> None:
        self._raw = raw
        self._progress = progress
        self._key = key
        self._total = total
        progress(ProgressEvent(key, "pull", total))

    def read(self, n: int = -1) -> bytes:
        if self._raw is None:
            return b""
        data: bytes = self._raw.read(n)  # type: ignore[attr-defined]
        if data:
            self._progress(ProgressEvent(self._key, "pull", self._total, len(data)))
        else:
            self._progress(ProgressEvent(self._key, "pull", self._total, 0, True))
            self._raw.close()  # type: ignore[attr-defined]
            self._raw = None
        return data


def _select(index: Index, wanted: str, what: str) -> Descriptor:
    for child in index.manifests:
        if child.platform() == wanted or (child.platform() or "").startswith(wanted + "/"):
            return child
    have = ", ".join(p for p in (c.platform() for c in index.manifests) if p) or "none"
    raise ImageNotFound(f"{what}: no image for platform {wanted} (has: {have})", hint="choose one with --platform")


def _collect(reader: _Reader, desc: Descriptor, out: list[Blob], what: str, heights: dict[Digest, int], depth: int = 0) -> int:
    """Append all blobs under ``desc`` to ``out`` (children first, the root last); return its height.

    Each digest is visited once (``heights`` holds the levels of indexes under each one seen),
    so an index listing the same child many times costs one visit, and the nesting is bounded
    by :data:`MAX_INDEX_DEPTH` as on push.
    """
    height = heights.get(desc.digest)
    if height is None:
        if depth > MAX_INDEX_DEPTH:
            raise InvalidImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep at {desc.digest}")
        height = heights[desc.digest] = _collect_new(reader, desc, out, what, heights, depth)
    if depth + height > MAX_INDEX_DEPTH:
        raise InvalidImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep under {desc.digest}")
    return height


def _collect_new(reader: _Reader, desc: Descriptor, out: list[Blob], what: str, heights: dict[Digest, int], depth: int) -> int:
    blob = reader.metadata(desc)
    parsed = parse_manifest(reader.view.blob(desc.digest), f"{what}: {desc.digest}")
    height = 0
    if isinstance(parsed, Index):
        for child in parsed.manifests:
            height = max(height, 1 + _collect(reader, child, out, what, heights, depth + 1))
    elif not mt.is_image_config(parsed.config.media_type):  # an artifact: blobs as stored
        out.append(reader.metadata(parsed.config))
        out.extend(reader.stored_layer(layer, None) for layer in parsed.layers)
    else:
        config = parse_config(reader.view.blob(parsed.config.digest), f"{what}: config {parsed.config.digest}")
        if len(config.diff_ids) != len(parsed.layers):
            raise InvalidImageError(f"{what}: manifest and config disagree on the number of layers")
        out.append(reader.metadata(parsed.config))
        out.extend(reader.stored_layer(layer, d) for layer, d in zip(parsed.layers, config.diff_ids, strict=True))
    out.append(blob)
    return height


def _archive_image(
    reader: _Reader, digest: Digest, ref: ImageRef, platform: str | None
) -> tuple[Manifest, tuple[tuple[Descriptor, Digest], ...], tuple[tuple[str, str], ...]]:
    """The manifest of ``ref`` for this platform, its layers with their diff_ids, and the names to give it."""
    what = str(ref)
    parsed = parse_manifest(reader.view.blob(digest), what)
    if isinstance(parsed, Index):
        child = _select(parsed, platform or host_platform(), what) if len(parsed.manifests) != 1 or platform else parsed.manifests[0]
        parsed = parse_manifest(reader.view.blob(child.digest), what)
        if isinstance(parsed, Index):
            raise InvalidImageError(f"{what}: nested indexes cannot be written to a docker-archive")
    assert isinstance(parsed, Manifest)
    if not mt.is_image_config(parsed.config.media_type):
        raise UsageError(f"{what}: not a container image (config {parsed.config.media_type}); pull it to oci: instead")
    config = parse_config(reader.view.blob(parsed.config.digest), what)
    if len(config.diff_ids) != len(parsed.layers):
        raise InvalidImageError(f"{what}: manifest and config disagree on the number of layers")
    names = ((ref.name, ref.tag),) if ref.tag else ()
    return parsed, tuple(zip(parsed.layers, config.diff_ids, strict=True)), names


def archive_images(
    view: RegistryView,
    lfs: LfsStore,
    refs: list[ImageRef],
    *,
    platform: str | None = None,
    progress: ProgressCallback = no_progress,
    trust_records: bool = True,
) -> tuple[list[tuple[ImageRef, Digest]], list[ArchiveImage]]:
    """The images ``refs`` name, as ``docker load`` wants them (plain layers), layers fetched.

    Blobs are read (and verified) only when a writer consumes the returned images.
    """
    reader = _Reader(view, lfs, progress, trust_records)
    view.prefetch_pull(refs)  # a remote fetched in part: what follows reads, a level an exchange
    resolved = [(ref, view.resolve(ref)) for ref in refs]
    planned = [_archive_image(reader, d, r, platform) for r, d in resolved]
    for _, layers, _ in planned:
        for layer, _ in layers:
            reader.want(layer)
    reader.prefetch()  # all layers at once, before any is sized (a zstd layer's size is in its frames)
    images = [
        ArchiveImage(reader.metadata(manifest.config), tuple(reader.plain_layer(layer, d) for layer, d in layers), names)
        for manifest, layers, names in planned
    ]
    return resolved, images


def layout_images(
    view: RegistryView,
    lfs: LfsStore,
    refs: list[ImageRef],
    ref_name: str | None,
    progress: ProgressCallback,
    held: Callable[[list[LayoutImage]], set[Digest]] | None = None,
) -> tuple[list[tuple[ImageRef, Digest]], list[LayoutImage]]:
    """The images ``refs`` name as stored (indexes whole), for an OCI layout; layers fetched.

    ``held`` (the destination's :meth:`lfsreg.image.HeldBlobs.held`) names blobs the destination
    has already: their layers are not fetched.
    """
    reader = _Reader(view, lfs, progress)
    view.prefetch_pull(refs, records=False)  # a remote fetched in part: what follows reads, a level an exchange
    resolved = [(ref, view.resolve(ref)) for ref in refs]
    images = []
    for ref, digest in resolved:
        data = view.blob(digest)
        root = Descriptor(parse_manifest(data, str(ref)).media_type, digest, len(data))
        blobs: list[Blob] = []
        _collect(reader, root, blobs, str(ref), {})
        images.append(LayoutImage(root, tuple(blobs), ((ref.name, ref_name or ref.tag),)))
    reader.prefetch(held(images) if held is not None else set())
    return resolved, images


def pull_images(
    view: RegistryView,
    lfs: LfsStore,
    refs: list[ImageRef],
    dest: ImageDestination,
    *,
    platform: str | None = None,
    progress: ProgressCallback = no_progress,
) -> list[tuple[ImageRef, Digest]]:
    """Write the images ``refs`` name to ``dest``; return each ref with its resolved digest.

    A destination that takes images as ``docker load`` does gets one image per platform with
    plain layers; a layout gets them as stored. Blobs are verified as the destination reads them.
    """
    if isinstance(dest, ArchiveDestination):
        resolved, archive = archive_images(view, lfs, refs, platform=platform, progress=progress)
        try:
            dest.write_archive(archive)
        except _RecordSizeWrong as exc:
            # A diffids record's uncompressedSize spares decompressing a layer twice, but it is
            # only an index: when one proves wrong, write again with every size measured.
            log.warning("ignoring a damaged diffids record: %s", exc)
            resolved, archive = archive_images(view, lfs, refs, platform=platform, progress=progress, trust_records=False)
            dest.write_archive(archive)
        return resolved
    if dest.ref_name and len(refs) != 1:
        raise UsageError(f"{dest.label}:{dest.ref_name} names one image, but {len(refs)} were requested")
    held = dest.held if isinstance(dest, HeldBlobs) else None
    resolved, layout = layout_images(view, lfs, refs, dest.ref_name, progress, held)
    dest.write_layout(layout)
    return resolved
