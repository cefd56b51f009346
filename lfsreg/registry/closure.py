"""What a tagged image needs in the tree: every path under ``blobs/``, ``layers/`` and ``diffids/``.

An image (a manifest or an index) needs its own blob, its children's (recursively), each
manifest's config and each layer's pointer; the ``diffids/`` record of a layer it needs is kept
beside it (records are an index, docs/format.md, but dropping them would cost the next push's
deduplication). Results are cached per digest: a content-addressed image needs the same paths
in every commit that holds it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, InvalidImageError, LfsregError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, parse_config, parse_manifest
from . import layout

# Reads a file of the tree at one commit (None: absent).
Reader = Callable[[str], "bytes | None"]


@dataclass
class Needs:
    """The paths an image needs: git files (path -> size) and layer objects (pointer path -> object)."""

    files: dict[str, int] = field(default_factory=dict)
    layers: dict[str, LfsObject] = field(default_factory=dict)
    diff_ids: set[Digest] = field(default_factory=set)

    def add(self, other: Needs) -> None:
        """Merge ``other`` into these needs."""
        self.files.update(other.files)
        self.layers.update(other.layers)
        self.diff_ids |= other.diff_ids

    def paths(self) -> set[str]:
        """Every path these needs name."""
        return set(self.files) | set(self.layers)


class Closure:
    """Computes (and caches) the needs of images in trees of layout ``lay``; ``read`` reads the tree they are read from."""

    def __init__(self, label: str, lay: layout.Layout) -> None:
        self.label = label
        self.layout = lay
        self._cache: dict[Digest, Needs] = {}

    def of(self, digest: Digest, read: Reader, depth: int = 0) -> Needs:
        """The needs of the manifest or index ``digest``; :class:`BlobNotFound` if a part is missing."""
        found = self._cache.get(digest)
        if found is not None:
            return found
        if depth > MAX_INDEX_DEPTH:
            raise InvalidImageError(f"{self.label}: indexes nested more than {MAX_INDEX_DEPTH} deep at {digest}")
        needs = Needs()
        path = self.layout.blob_path(digest)
        data = read(path)
        if data is None:
            raise BlobNotFound(f"{self.label}: manifest {digest} is missing")
        needs.files[path] = len(data)
        doc = parse_manifest(data, f"{self.label}: {digest}")
        if isinstance(doc, Index):
            for child in doc.manifests:
                needs.add(self.of(child.digest, read, depth + 1))
        else:
            config_path = self.layout.blob_path(doc.config.digest)
            config = read(config_path)
            if config is None:
                raise BlobNotFound(f"{self.label}: config {doc.config.digest} of {digest} is missing")
            needs.files[config_path] = len(config)
            with contextlib.suppress(LfsregError):  # an artifact's config: no diff_ids, no records
                needs.diff_ids.update(parse_config(config, f"{self.label}: {doc.config.digest}").diff_ids)
            for desc in doc.layers:
                if mt.stored_in_git(desc.media_type):  # a signature's payload: a git file (docs/format.md)
                    payload_path = self.layout.blob_path(desc.digest)
                    if read(payload_path) is None:
                        raise BlobNotFound(f"{self.label}: payload {desc.digest} of {digest} is missing")
                    needs.files[payload_path] = desc.size
                    continue
                needs.layers.update(layer_pointers(self.layout, desc, read))
        self._cache[digest] = needs
        return needs

    def records(self, needs: Needs, read: Reader) -> dict[str, bytes]:
        """The ``diffids/`` records (path -> content) of layers in ``needs`` that the tree holds."""
        out: dict[str, bytes] = {}
        for diff_id in needs.diff_ids:
            path = self.layout.diffid_path(diff_id)
            data = read(path)
            if data is None:
                continue
            try:
                record = layout.parse_diffid(data, diff_id, path)
            except LfsregError:
                continue  # a damaged record is only a lost shortcut
            digest = record.desc.digest
            if self.layout.layer_path(digest) in needs.layers or self.layout.chunk_path(digest, 0) in needs.layers:
                out[path] = data
        return out


def layer_pointers(lay: layout.Layout, desc: Descriptor, read: Reader) -> dict[str, LfsObject]:
    """Pointer path -> LFS object of a layer: its one pointer, or each of its chunks (docs/format.md).

    A layer stored whole is named by its descriptor (its pointer is not read); a chunked one's
    chunk pointers are read in order (``000000``, ``000001``… until the first that is absent).
    """
    chunks: dict[str, LfsObject] = {}
    for i in itertools.count():
        path = lay.chunk_path(desc.digest, i)
        data = read(path)
        if data is None:
            break
        chunks[path] = pointer_object(data, path)
    return chunks or {lay.layer_path(desc.digest): LfsObject.of(desc.digest, desc.size)}


def pointer_object(data: bytes, path: str) -> LfsObject:
    """The object a pointer file names; :class:`InvalidImageError` if it is not a pointer."""
    obj = lfs_pointer.decode(data)
    if obj is None:
        raise InvalidImageError(f"{path}: not a Git LFS pointer")
    return obj
