"""``docker save`` tarballs: ``manifest.json``, the manifest lfsreg synthesises, and streams.

Reading follows ``manifest.json`` (what ``docker load`` does): each entry names a config and
its layer files. An image known only by its config and layer blobs gets the manifest
:func:`synthesize_manifest` writes, so the same image always yields the same manifest.

A stream (from a Docker engine) is read in one pass, as it arrives. ``docker save`` puts
``manifest.json`` last, so a stream cannot be parsed before its layers go by. Instead of
spooling it to disk first, every large member is staged the moment it arrives: hashed (its
diff_id), compressed as the push asks, written to LFS staging. Members whose names say they are
layers the registry already holds are skipped unread. When the stream ends, ``manifest.json``
and the configs tie staged layers to images; layers that belong to no image are discarded.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import DigestMismatchError, InvalidImageError
from ..layers import LayerStaging, PreparedLayer, stage_sniffed
from ..manifest import Descriptor, dump_json, parse_config, parse_json
from ..reference import familiar
from .files import safe_path

SMALL = 1 << 20  # members up to this size are kept in memory (configs, manifests, tiny layers)
_HEX_NAME = re.compile(r"(?:^|/)(?:blobs/sha256/)?([0-9a-f]{64})(?:\.tar)?$")


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One image of ``manifest.json``: its config path, layer paths (base first) and names."""

    config_path: str
    layer_paths: tuple[str, ...]
    names: tuple[str, ...]


def read_manifest_json(data: bytes, label: str) -> list[ArchiveEntry]:
    """Parse a ``manifest.json``; raise :class:`InvalidImageError` naming what is wrong."""
    doc = parse_json(data, f"{label}: manifest.json")
    if not isinstance(doc, list) or not doc:
        raise InvalidImageError(f"{label}: manifest.json lists no images")
    out = []
    for i, item in enumerate(doc):
        what = f"{label}: manifest.json[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidImageError(f"{what}: missing Config")
        layers = item.get("Layers") or []
        tags = item.get("RepoTags") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise InvalidImageError(f"{what}: Layers is not a list of paths")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise InvalidImageError(f"{what}: RepoTags is not a list of names")
        out.append(ArchiveEntry(item["Config"], tuple(layers), tuple(familiar(t) for t in tags)))
    return out


def synthesize_manifest(config: bytes, layers: list[Descriptor]) -> bytes:
    """The OCI manifest lfsreg writes for an image known only by its config and layer blobs.

    Every source without a manifest of its own (a legacy ``docker save``, a Docker engine)
    goes through here, so the same image always yields the same manifest.
    """
    return dump_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of_bytes(config)), "size": len(config)},
            "layers": [d.to_json() for d in layers],
        }
    )


@dataclass
class Ingested:
    """What a stream held: small files, links, and staged layers by member path."""

    label: str
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    staged: dict[str, PreparedLayer] = field(default_factory=dict)  # member path -> staged layer
    skipped: dict[str, Digest] = field(default_factory=dict)  # member path -> diff_id its name claims
    verbatim: set[str] = field(default_factory=set)  # members that arrived compressed (kept as they are)
    present: set[Digest] = field(default_factory=set)  # diff_ids the registry already holds

    def resolve(self, path: str) -> str:
        """Follow links inside the archive."""
        name = safe_path(path, self.label)
        for _ in range(16):
            if name not in self.links:
                return name
            name = self.links[name]
        raise InvalidImageError(f"{self.label}: link loop at {path}")

    def discard(self) -> None:
        """Remove staged files that are still there (a push consumes the ones it uploads)."""
        for layer in self.staged.values():
            if layer.staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer.staged)


def _stage_member(got: Ingested, reader: BinaryIO, name: str, size: int, how: LayerStaging) -> PreparedLayer:
    """Stage one member through the verified writer; a name that gives a digest must be right."""
    hint = _HEX_NAME.search(name)
    layer, verbatim = stage_sniffed(reader, name, size, how, Digest.sha256(hint.group(1)) if hint else None)
    if verbatim:
        got.verbatim.add(name)
    return layer


def ingest_stream(stream: BinaryIO, label: str, *, present: set[Digest], how: LayerStaging) -> Ingested:
    """Read a ``docker save`` stream once, staging every layer the registry does not hold."""
    got = Ingested(label, present=set(present))
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:
            for info in tar:
                name = safe_path(info.name, label)
                if info.issym() or info.islnk():
                    base = posixpath.dirname(name) if info.issym() else ""
                    got.links[name] = safe_path(posixpath.join(base, info.linkname), label, allow_dotdot=True)
                    continue
                if not info.isfile():
                    continue
                reader = tar.extractfile(info)
                assert reader is not None
                hint = _HEX_NAME.search(name)
                if info.size > SMALL and hint and Digest.sha256(hint.group(1)) in present:
                    got.skipped[name] = Digest.sha256(hint.group(1))  # the registry has it: not even read
                    continue
                if info.size <= SMALL:
                    got.files[name] = reader.read()
                else:
                    got.staged[name] = _stage_member(got, cast(BinaryIO, reader), name, info.size, how)
    except (tarfile.TarError, EOFError) as exc:
        got.discard()
        raise InvalidImageError(f"{label}: the image stream is not a valid tar archive ({exc})") from exc
    except BaseException:
        got.discard()
        raise
    return got


def images_of(got: Ingested, how: LayerStaging) -> Iterator[tuple[Descriptor, ArchiveEntry, bytes, dict[Digest, PreparedLayer], bytes]]:
    """Each image of the stream: its manifest's descriptor, its entry, manifest bytes, staged layers, config.

    Every layer is checked against its config's diff_id: a staged one by the hash taken while
    it streamed by, a skipped one by the name it carried (the registry holds that content).
    """
    if "manifest.json" not in got.files:
        raise InvalidImageError(f"{got.label}: not a docker save stream (no manifest.json)")
    for entry in read_manifest_json(got.files["manifest.json"], got.label):
        config_bytes = got.files.get(got.resolve(entry.config_path))
        if config_bytes is None:
            raise InvalidImageError(f"{got.label}: missing config {entry.config_path}")
        config = parse_config(config_bytes, f"{got.label}: {entry.config_path}")
        if len(config.diff_ids) != len(entry.layer_paths):
            raise InvalidImageError(
                f"{got.label}: {entry.config_path} lists {len(config.diff_ids)} layers, manifest.json {len(entry.layer_paths)}"
            )
        layers: list[Descriptor] = []
        staged: dict[Digest, PreparedLayer] = {}
        for path, diff_id in zip(entry.layer_paths, config.diff_ids, strict=True):
            member = got.resolve(path)
            if member in got.files and member not in got.staged and diff_id in got.present:
                layers.append(Descriptor(mt.OCI_LAYER, diff_id, len(got.files[member])))  # the registry has it
                continue
            if member in got.files and member not in got.staged:  # a tiny layer kept in memory
                got.staged[member] = _stage_member(got, io.BytesIO(got.files[member]), member, len(got.files[member]), how)
            if member in got.staged:
                layer = got.staged[member]
                if layer.diff_id != diff_id:
                    raise DigestMismatchError(f"{got.label}: layer {path}: content is {layer.diff_id}, the config says {diff_id}")
                # A layer that arrived compressed keeps its bytes and digest.
                plain = Descriptor(mt.OCI_LAYER, diff_id, layer.uncompressed_size or 0)
                source_desc = layer.desc if member in got.verbatim else plain
                staged[source_desc.digest] = layer
            elif got.skipped.get(member) == diff_id:
                source_desc = Descriptor(mt.OCI_LAYER, diff_id, 0)
            else:
                raise InvalidImageError(f"{got.label}: layer {path} of {entry.config_path} is missing from the stream")
            layers.append(source_desc)
        data = synthesize_manifest(config_bytes, layers)
        yield Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(data), len(data)), entry, data, staged, config_bytes
