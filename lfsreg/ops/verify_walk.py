"""The walk behind ``verify``: every manifest, index, config and layer pointer the live tags reach.

:class:`Walk` checks each image the full way (:meth:`Walk.node`: the parsers of
:mod:`lfsreg.manifest` and :meth:`RegistryView.layer_objects`, which name what is wrong) unless
the fast path vouches for it first (:meth:`Walk.quick`): one image manifest whose config and
layer pointers are exactly as lfsreg writes them. The fast path checks the same things with
less work per image (no descriptor objects it does not keep, a pointer compared with its one
canonical encoding instead of parsed) and changes nothing unless the whole image passes; on
anything it is not sure of it steps aside, and the full walk reads the image again and says
what is wrong. On 30,000 images that is most of ``verify``'s time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import LfsregError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..git.bulk import DIR_MODE, BulkSnapshot
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, parse_config, parse_manifest, plain_diff_ids, plain_manifest
from ..registry.view import RegistryView

_POINTER = lfs_pointer.encode(LfsObject("%s", 0)).replace(b"size 0", b"size %d")  # the canonical pointer, as a template


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: where it was found (``name:tag``, or the registry), and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What :func:`lfsreg.ops.verify.verify_registry` checked and found."""

    tags: int = 0
    blobs: int = 0  # manifests, indexes and configs checked
    objects: int = 0  # LFS objects the live tags need
    object_bytes: int = 0
    deep: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems


@dataclass(slots=True)
class CheckedLayer:
    """A layer the walk reached: its descriptor, diff_id (if its config was read), objects, and the first tag needing it."""

    desc: Descriptor
    diff_id: Digest | None
    objects: list[LfsObject]
    where: str


class Walk:
    """One pass over the tags of a :class:`BulkSnapshot`'s registry; what many tags share is checked once."""

    def __init__(self, view: RegistryView, snapshot: BulkSnapshot, report: VerifyReport) -> None:
        self.view = view
        self.snapshot = snapshot
        self.report = report
        self.seen: set[str] = set()  # hex digests of the manifests, indexes and configs checked already
        self.layers: dict[str, CheckedLayer] = {}  # by hex digest
        self.objects: dict[str, tuple[LfsObject, str]] = {}  # oid -> (object, first tag that needs it)
        self._shards: dict[str, Mapping[bytes, tuple[int, bytes]]] = {}  # blobs/<algorithm>/<hh> (and layers/) -> entries

    def problem(self, where: str, message: str) -> None:
        """Report one problem."""
        self.report.problems.append(Problem(where, message))

    def _find(self, top: str, digest: Digest) -> tuple[str, tuple[int, bytes] | None]:
        """The path of ``top/<algorithm>/<hh>/<hex>`` and its tree entry ``(mode, id)`` (``None``: absent)."""
        shard_path = f"{top}/{digest.algorithm}/{digest.hex[:2]}"
        shard = self._shards.get(shard_path)
        if shard is None:  # a damaged shard is read (and reported) again for each file in it
            shard = self._shards[shard_path] = self.snapshot.directory(shard_path)
        return f"{shard_path}/{digest.hex}", shard.get(digest.hex.encode())

    def _file(self, top: str, digest: Digest, *, check: bool) -> bytes | None:
        """The content of a file under ``top`` (``None``: absent, a directory, or unreadable), for the fast path."""
        try:
            path, entry = self._find(top, digest)
            if entry is None or entry[0] == DIR_MODE:
                return None
            return self.snapshot.blob(entry[1], path) if check else self.snapshot.blob_unchecked(entry[1], path)
        except LfsregError:
            return None

    def root(self, digest: Digest, where: str) -> None:
        """Check the image a tag names, and everything below it."""
        self.node(digest, None, where, 0)

    # -- the fast path ------------------------------------------------------------------------
    def quick(self, digest: Digest, size: int | None, where: str) -> bool:
        """Check an image manifest, its config and its whole layers as :meth:`node` would; ``False``: not sure, nothing changed.

        True only when :meth:`node` would find nothing wrong; it then records the same (the
        manifest and config seen, the layers with their diff_ids, the objects with ``where``).
        """
        data = self._file("blobs", digest, check=False) if digest.algorithm == "sha256" else None
        if data is None or sha256(data).hexdigest() != digest.hex or (size is not None and len(data) != size):
            return False
        plain = plain_manifest(data)
        if plain is None:
            return False
        config, descs, layers = plain
        if any(mt.stored_in_git(d[0]) for d in descs):
            return False  # a signature: its payload is a git file, left to the full check
        diff_ids: list[Digest | None] = [None] * len(descs)
        blobs = 1
        if config[1] not in self.seen:
            raw = self._file("blobs", Digest("sha256", config[1]), check=False)
            if raw is None or len(raw) != config[2] or sha256(raw).hexdigest() != config[1]:
                return False
            blobs = 2
            if mt.is_image_config(config[0]):
                ids = plain_diff_ids(raw)
                if ids is None or len(ids) != len(descs):
                    return False
                diff_ids = [Digest("sha256", h) for h in ids]
        found: dict[str, CheckedLayer] = {}
        for d, desc, diff_id in zip(layers, descs, diff_ids, strict=True):
            layer_type, hexpart, layer_size = desc
            if hexpart in self.layers or hexpart in found:
                continue
            layer = Digest("sha256", hexpart)
            if self._file("layers", layer, check=True) != _POINTER % (hexpart.encode(), layer_size):
                return False  # chunked, missing or not the pointer lfsreg writes: the full check says which
            found[hexpart] = CheckedLayer(
                Descriptor(layer_type, layer, layer_size, dict(d)), diff_id, [LfsObject(hexpart, layer_size)], where
            )
        # Sure now: record what node() would have.
        self.seen.add(digest.hex)
        self.seen.add(config[1])
        self.report.blobs += blobs
        for desc, diff_id in zip(descs, diff_ids, strict=True):
            known = self.layers.get(desc[1])
            if known is None:
                known = self.layers[desc[1]] = found[desc[1]]
                self.objects.setdefault(desc[1], (known.objects[0], where))
            elif known.diff_id is None:
                known.diff_id = diff_id
        return True

    # -- the full check -----------------------------------------------------------------------
    def blob(self, digest: Digest, size: int | None, kind: str, where: str) -> bytes | None:
        """The stored bytes of a manifest, index or config, or ``None`` after reporting why not."""
        self.report.blobs += 1
        try:
            path, entry = self._find("blobs", digest)
            if entry is None or entry[0] == DIR_MODE:
                self.problem(where, f"{kind} {digest} is missing")
                return None
            # Checked below against its digest, which vouches for more than git's object id would.
            data = self.snapshot.blob_unchecked(entry[1], path)
        except LfsregError as exc:
            self.problem(where, f"{kind} {digest}: {exc}")
            return None
        if digest.algorithm != "sha256" or sha256(data).hexdigest() != digest.hex:
            self.problem(where, f"{kind} {digest} does not match its digest (the stored bytes hash to {Digest.of_bytes(data)})")
            return None
        if size is not None and len(data) != size:
            self.problem(where, f"{kind} {digest} has {len(data)} bytes, its descriptor says {size}")
            return None
        return data

    def node(self, digest: Digest, size: int | None, where: str, depth: int) -> None:
        """Check a manifest or index (and what it references) once, reporting every problem."""
        if digest.hex in self.seen or (depth <= MAX_INDEX_DEPTH and self.quick(digest, size, where)):
            return
        self.seen.add(digest.hex)
        if depth > MAX_INDEX_DEPTH:
            self.problem(where, f"indexes nested more than {MAX_INDEX_DEPTH} deep at {digest}")
            return
        data = self.blob(digest, size, "manifest", where)
        if data is None:
            return
        try:
            parsed = parse_manifest(data, f"manifest {digest}")
        except LfsregError as exc:
            self.problem(where, str(exc))
            return
        if isinstance(parsed, Index):
            for child in parsed.manifests:
                self.node(child.digest, child.size, where, depth + 1)
            return
        config = parsed.config
        diff_ids: tuple[Digest | None, ...] = (None,) * len(parsed.layers)
        if config.digest.hex not in self.seen:
            self.seen.add(config.digest.hex)
            raw = self.blob(config.digest, config.size, "config", where)
            if raw is not None and mt.is_image_config(config.media_type):
                try:
                    parsed_config = parse_config(raw, f"config {config.digest}")
                except LfsregError as exc:
                    self.problem(where, str(exc))
                else:
                    if len(parsed_config.diff_ids) != len(parsed.layers):
                        self.problem(where, f"manifest {digest} has {len(parsed.layers)} layers, its config {len(parsed_config.diff_ids)}")
                    else:
                        diff_ids = parsed_config.diff_ids
        for layer, diff_id in zip(parsed.layers, diff_ids, strict=True):
            self.layer(layer, diff_id, where)

    def layer(self, desc: Descriptor, diff_id: Digest | None, where: str) -> None:
        """Check a layer's pointer (or chunks) once; later tags only add a diff_id the first did not know."""
        if mt.stored_in_git(desc.media_type):  # a signature's payload: a git file under blobs/ (docs/format.md)
            if desc.digest.hex not in self.seen:
                self.seen.add(desc.digest.hex)
                self.blob(desc.digest, desc.size, "signature payload", where)
            return
        known = self.layers.get(desc.digest.hex)
        if known is not None:
            if known.diff_id is None:
                known.diff_id = diff_id
            return
        try:
            objects = self.view.layer_objects(desc)
        except LfsregError as exc:
            self.problem(where, str(exc).removeprefix(f"{self.view.label}: "))
            objects = []
        self.layers[desc.digest.hex] = CheckedLayer(desc, diff_id, objects, where)
        for obj in objects:
            self.objects.setdefault(obj.oid, (obj, where))


__all__ = ["CheckedLayer", "Problem", "VerifyReport", "Walk"]
