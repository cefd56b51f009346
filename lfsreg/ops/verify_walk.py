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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import LfsregError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..git.bulk import BulkSnapshot
from ..git.levels import DIR_MODE
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, PlainManifest, parse_config, parse_manifest, plain_diff_ids, plain_manifest
from ..registry.view import RegistryView
from .halves import in_halves

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


_UNREAD = object()


def _checked_manifest(hexpart: str, data: bytes | None) -> tuple[int, PlainManifest] | None:
    """Size and :func:`plain_manifest` of a manifest's bytes that hash to ``hexpart``; ``None`` otherwise."""
    if data is None or sha256(data).hexdigest() != hexpart:
        return None
    plain = plain_manifest(data)
    return None if plain is None else (len(data), plain)


def _checked_config(hexpart: str, data: bytes | None) -> tuple[int, list[str] | None] | None:
    """Size and :func:`plain_diff_ids` (``None``: not plain) of a config's bytes that hash to ``hexpart``; ``None`` otherwise."""
    if data is None or sha256(data).hexdigest() != hexpart:
        return None
    return len(data), plain_diff_ids(data)


class Walk:
    """One pass over the tags of a :class:`BulkSnapshot`'s registry; what many tags share is checked once."""

    def __init__(self, view: RegistryView, snapshot: BulkSnapshot, report: VerifyReport) -> None:
        self.view = view
        self.snapshot = snapshot
        self.report = report
        self.seen: set[str] = set()  # hex digests of the manifests, indexes and configs checked already
        self.layers: dict[str, CheckedLayer] = {}  # by hex digest
        self.objects: dict[str, tuple[LfsObject, str]] = {}  # oid -> (object, first tag that needs it)
        self._shards: dict[str, Mapping[bytes, tuple[int, bytes]]] = {}  # blobs/<algorithm>/<shards> (and layers/) -> entries
        # What prepare() read for quick(), by hex digest; each taken once (None: unreadable or wrong).
        self._ready_manifests: dict[str, tuple[int, PlainManifest] | None] = {}
        self._ready_configs: dict[str, tuple[int, list[str] | None] | None] = {}
        self._ready_pointers: dict[str, bytes | None] = {}

    def problem(self, where: str, message: str) -> None:
        """Report one problem."""
        self.report.problems.append(Problem(where, message))

    def _find(self, top: str, digest: Digest) -> tuple[str, tuple[int, bytes] | None]:
        """The path of ``top/<algorithm>/<shards>/<hex>`` and its tree entry ``(mode, id)`` (``None``: absent)."""
        shard_path = self.view.layout.shard_dir(top, digest.hex, digest.algorithm)
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
    def _read_many(self, top: str, hexparts: list[str], *, check: bool) -> dict[str, bytes | None]:
        """The files ``top/sha256/<shards>/<hex>`` of these hex digests (``None``: absent, a directory, or unreadable)."""
        wanted: list[tuple[str, bytes]] = []
        shard_dir = self.view.layout.shard_dir
        for hexpart in hexparts:  # _find's look-up, without a Digest and two paths for each of 90,000 files
            shard_path = shard_dir(top, hexpart)
            shard = self._shards.get(shard_path)
            if shard is None:
                try:
                    shard = self._shards[shard_path] = self.snapshot.directory(shard_path)
                except LfsregError:
                    continue  # quick() reads it again, and the full check says what is wrong
            entry = shard.get(hexpart.encode())
            if entry is not None and entry[0] != DIR_MODE:
                wanted.append((hexpart, entry[1]))
        found = self.snapshot.blobs([sha for _, sha in wanted], check=check)
        out: dict[str, bytes | None] = dict.fromkeys(hexparts)
        out.update((h, data) for (h, _), data in zip(wanted, found, strict=True))
        return out

    def prepare(self, roots: Iterable[Digest]) -> None:
        """Read what :meth:`quick` will need for these images all at once, in the order the packs hold it.

        Manifests, then their configs, then their layers' pointers: each a pass through the pack
        instead of a jump per file, half of them in a child process where two cores allow
        (:func:`lfsreg.ops.halves.in_halves`). Only reads and checks that depend on nothing
        else are done here; :meth:`quick` still decides, image by image, in the tags' order.
        """
        hexparts = list(dict.fromkeys(d.hex for d in roots if d.algorithm == "sha256" and d.hex not in self.seen))
        for manifests, configs, pointers in in_halves(self._read_ahead, hexparts):
            self._ready_manifests.update(manifests)
            self._ready_configs.update(configs)
            self._ready_pointers.update(pointers)

    def _read_ahead(
        self, hexparts: list[str]
    ) -> tuple[dict[str, tuple[int, PlainManifest] | None], dict[str, tuple[int, list[str] | None] | None], dict[str, bytes | None]]:
        """What :meth:`prepare` keeps for these manifests (hex digests): it reads, and changes nothing."""
        manifests: dict[str, tuple[int, PlainManifest] | None] = {}
        configs: dict[str, None] = {}
        pointers: dict[str, None] = {}
        for hexpart, data in self._read_many("blobs", hexparts, check=False).items():
            checked = manifests[hexpart] = _checked_manifest(hexpart, data)
            if checked is not None:
                configs[checked[1][0][1]] = None
                pointers.update((d[1], None) for d in checked[1][1] if not mt.stored_in_git(d[0]))
        read = self._read_many("blobs", list(configs), check=False)
        return manifests, {h: _checked_config(h, data) for h, data in read.items()}, self._read_many("layers", list(pointers), check=True)

    def _manifest(self, digest: Digest) -> tuple[int, PlainManifest] | None:
        found = self._ready_manifests.pop(digest.hex, _UNREAD)
        if found is not _UNREAD:
            return found  # type: ignore[return-value]
        data = self._file("blobs", digest, check=False) if digest.algorithm == "sha256" else None
        return _checked_manifest(digest.hex, data)

    def _config(self, hexpart: str) -> tuple[int, list[str] | None] | None:
        found = self._ready_configs.pop(hexpart, _UNREAD)
        if found is not _UNREAD:
            return found  # type: ignore[return-value]
        return _checked_config(hexpart, self._file("blobs", Digest("sha256", hexpart), check=False))

    def _pointer(self, hexpart: str) -> bytes | None:
        found = self._ready_pointers.pop(hexpart, _UNREAD)
        if found is not _UNREAD:
            return found  # type: ignore[return-value]
        return self._file("layers", Digest("sha256", hexpart), check=True)

    def quick(self, digest: Digest, size: int | None, where: str) -> bool:
        """Check an image manifest, its config and its whole layers as :meth:`node` would; ``False``: not sure, nothing changed.

        True only when :meth:`node` would find nothing wrong; it then records the same (the
        manifest and config seen, the layers with their diff_ids, the objects with ``where``).
        """
        manifest = self._manifest(digest)
        if manifest is None or (size is not None and manifest[0] != size):
            return False
        config, descs, layers = manifest[1]
        if any(mt.stored_in_git(d[0]) for d in descs):
            return False  # a signature: its payload is a git file, left to the full check
        diff_ids: list[Digest | None] = [None] * len(descs)
        blobs = 1
        if config[1] not in self.seen:
            checked = self._config(config[1])
            if checked is None or checked[0] != config[2]:
                return False
            blobs = 2
            if mt.is_image_config(config[0]):
                ids = checked[1]
                if ids is None or len(ids) != len(descs):
                    return False
                diff_ids = [Digest("sha256", h) for h in ids]
        found: dict[str, CheckedLayer] = {}
        for d, desc, diff_id in zip(layers, descs, diff_ids, strict=True):
            layer_type, hexpart, layer_size = desc
            if hexpart in self.layers or hexpart in found:
                continue
            if self._pointer(hexpart) != _POINTER % (hexpart.encode(), layer_size):
                return False  # chunked, missing or not the pointer lfsreg writes: the full check says which
            layer = Digest("sha256", hexpart)
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
