"""``docker save`` tarballs: the legacy layout and Docker 25+'s OCI layout plus manifest.json.

Reading always follows ``manifest.json`` (what ``docker load`` does): each entry names a
config and its layer files. Where the archive also holds an OCI manifest for that config (a
Docker 25+ save), that manifest is the root and keeps its exact bytes and digest; otherwise a
manifest is synthesised from the config and the layer files, as skopeo does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from .. import mediatypes as mt
from ..compression import sniff
from ..digest import Digest, HashingReader
from ..errors import InvalidImageError
from ..formats.files import Files
from ..formats.oci_layout import blob_path, read_index
from ..image import Root
from ..manifest import Descriptor, Manifest, dump_json, parse_config, parse_json, parse_manifest
from ..reference import familiar


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


def _entries(files: Files) -> list[ArchiveEntry]:
    if not files.exists("manifest.json"):
        raise InvalidImageError(f"{files.label}: not a docker-archive (no manifest.json)")
    return read_manifest_json(files.read_small("manifest.json"), files.label)


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


class DockerArchiveSource:
    """An :class:`lfsreg.image.ImageSource` over a ``docker save`` tarball (or directory)."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.label = files.label
        self._paths: dict[Digest, str] = {}
        self._synthetic: dict[Digest, bytes] = {}
        self._roots: list[Root] = []
        oci = self._oci_manifests()
        for entry in _entries(files):
            self._roots.append(self._root(entry, oci))

    def _oci_manifests(self) -> dict[Digest, Manifest]:
        """Manifests of a Docker 25+ archive's OCI index, keyed by config digest."""
        if not self.files.exists("index.json") or not self.files.exists("oci-layout"):
            return {}
        found: dict[Digest, Manifest] = {}
        for desc in read_index(self.files):
            if not mt.is_manifest(desc.media_type) or not self.files.exists(blob_path(desc)):
                continue
            data = self.files.read_small(blob_path(desc))
            if Digest.of_bytes(data) != desc.digest:
                continue  # a stale index entry; manifest.json is authoritative
            parsed = parse_manifest(data, f"{self.label}: {blob_path(desc)}")
            if isinstance(parsed, Manifest):
                found[parsed.config.digest] = parsed
        return found

    def _root(self, entry: ArchiveEntry, oci: dict[Digest, Manifest]) -> Root:
        what = f"{self.label}: {entry.config_path}"
        config_bytes = self.files.read_small(entry.config_path)
        config = parse_config(config_bytes, what)
        if len(config.diff_ids) != len(entry.layer_paths):
            raise InvalidImageError(f"{what}: config lists {len(config.diff_ids)} layers, manifest.json {len(entry.layer_paths)}")
        config_digest = Digest.of_bytes(config_bytes)
        self._paths[config_digest] = entry.config_path
        existing = oci.get(config_digest)
        if existing is not None and len(existing.layers) == len(entry.layer_paths):
            for layer, path in zip(existing.layers, entry.layer_paths, strict=True):
                self._paths[layer.digest] = path
            desc = Descriptor(existing.media_type, existing.digest, len(existing.data))
            self._synthetic[existing.digest] = existing.data
            return Root(desc, entry.names)
        layers = [self._layer(path, diff_id) for path, diff_id in zip(entry.layer_paths, config.diff_ids, strict=True)]
        data = synthesize_manifest(config_bytes, layers)
        digest = Digest.of_bytes(data)
        self._synthetic[digest] = data
        return Root(Descriptor(mt.OCI_MANIFEST, digest, len(data)), entry.names)

    def _layer(self, path: str, diff_id: Digest) -> Descriptor:
        size = self.files.size(path)
        with self.files.open(path) as f:
            algorithm = sniff(f.read(4))
        if algorithm == "none":
            # An uncompressed layer's digest is its diff_id; it is verified when read.
            digest = diff_id
        else:
            with self.files.open(path) as f:
                reader = HashingReader(f)
                reader.drain()
            digest = reader.digest
        self._paths[digest] = path
        return Descriptor(mt.OCI_LAYER_FOR[algorithm], digest, size)

    def roots(self) -> list[Root]:
        """One root per ``manifest.json`` entry."""
        return list(self._roots)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """Open a config or layer member, or a manifest (stored or synthesised)."""
        if desc.digest in self._synthetic:
            return io.BytesIO(self._synthetic[desc.digest])
        path = self._paths.get(desc.digest)
        if path is None:
            path = blob_path(desc)
        return self.files.open(path)

    def close(self) -> None:
        """Close the underlying files."""
        self.files.close()
