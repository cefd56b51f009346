"""The ``docker-archive:`` transport: ``docker save`` tarballs, read and written.

Reading always follows ``manifest.json`` (what ``docker load`` does): each entry names a
config and its layer files. Where the archive also holds an OCI manifest for that config (a
Docker 25+ save), that manifest is the root and keeps its exact bytes and digest; otherwise a
manifest is synthesised from the config and the layer files, as skopeo does.

Writing produces what Docker 25+ saves: an OCI layout plus ``manifest.json``, layers plain.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from .. import mediatypes as mt
from ..compression import sniff
from ..digest import Digest, HashingReader
from ..errors import ImageNotFound, InvalidImageError, InvalidReference
from ..formats.docker_save import ArchiveEntry, read_manifest_json, synthesize_manifest
from ..formats.files import Files, open_files
from ..formats.oci_layout import LAYOUT_FILE, blob_path, index_document, index_entry, read_index
from ..image import ArchiveImage, Root
from ..manifest import Descriptor, Manifest, dump_json, parse_config, parse_manifest
from ..reference import ImageRef, familiar
from .sinks import Sink, TarSink, put_blob, write_all


def _entries(files: Files) -> list[ArchiveEntry]:
    if not files.exists("manifest.json"):
        raise InvalidImageError(f"{files.label}: not a docker-archive (no manifest.json)")
    return read_manifest_json(files.read_small("manifest.json"), files.label)


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


def open_source(path: str, spool_dir: str | None) -> DockerArchiveSource:
    """Open the ``docker save`` tarball (or directory) at ``path``."""
    files = open_files(path, spool_dir=spool_dir)
    try:
        return DockerArchiveSource(files)
    except BaseException:
        files.close()
        raise


def check_selector(selector: str) -> None:
    """A selector is ``@N`` or a ``NAME[:TAG]`` of the archive's ``RepoTags``."""
    if not selector.startswith("@"):
        ImageRef.parse(familiar(selector), default_tag="latest")


def select(roots: list[Root], selector: str | None, label: str) -> list[Root]:
    """The images a selector picks: every tagged one (all if none is), ``@N``, or one name.

    Selecting one name of an image tags that name only, not its other names.
    """
    if selector is None:
        tagged = [r for r in roots if r.names]
        return tagged if tagged else roots
    if selector.startswith("@"):
        try:
            return [roots[int(selector[1:])]]
        except (ValueError, IndexError):
            raise InvalidReference(f"{label}: no image number {selector[1:]} ({len(roots)} in the source)") from None
    wanted = familiar(selector)
    if ":" not in wanted.rsplit("/", 1)[-1]:
        wanted += ":latest"
    found = [Root(r.descriptor, (wanted,), r.refs) for r in roots if wanted in r.names]
    if not found:
        have = sorted({n for r in roots for n in r.names + r.refs})
        raise ImageNotFound(f"{label}: no image {selector!r} in the source", hint=f"it has: {', '.join(have) or 'no names'}")
    return found


def uncompressed_manifest(image: ArchiveImage) -> bytes:
    """The OCI manifest Docker 25+ writes for an image whose layers are plain tars."""
    return dump_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(image.config.desc.digest), "size": image.config.desc.size},
            "layers": [{"mediaType": mt.OCI_LAYER, "digest": str(b.desc.digest), "size": b.desc.size} for b in image.layers],
        }
    )


def write_docker_archive(sink: Sink, images: list[ArchiveImage]) -> None:
    """Write a tarball ``docker load`` accepts: an OCI layout plus ``manifest.json``, as Docker 25+ does."""
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    entries: list[dict[str, Any]] = []
    for image in images:
        put_blob(sink, image.config)
        for layer in image.layers:
            put_blob(sink, layer)
        data = uncompressed_manifest(image)
        desc = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(data), len(data))
        if not sink.has_blob(desc):
            sink.put_bytes(blob_path(desc), data)
        for name, tag in image.names or ((None, None),):
            entries.append(index_entry(desc, name, tag))
            if name and tag:
                top = image.layers[-1].desc.digest.hex if image.layers else image.config.desc.digest.hex
                repositories.setdefault(name, {})[tag] = top
        manifest_json.append(
            {
                "Config": blob_path(image.config.desc),
                "RepoTags": [f"{n}:{t}" for n, t in image.names] or None,
                "Layers": [blob_path(layer.desc) for layer in image.layers],
            }
        )
    sink.put_bytes("oci-layout", LAYOUT_FILE)
    sink.put_bytes("index.json", index_document(entries))
    sink.put_bytes("manifest.json", dump_json(manifest_json) + b"\n")
    if repositories:
        sink.put_bytes("repositories", dump_json(repositories) + b"\n")


class DockerArchiveDestination:
    """An :class:`lfsreg.image.ArchiveDestination`: a ``docker load`` tarball at ``path``, atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.label = f"docker-archive:{path}"

    def write_archive(self, images: list[ArchiveImage]) -> None:
        """Write the tarball under a temporary name and rename it into place when all verified."""
        write_all(TarSink(self.path), lambda sink: write_docker_archive(sink, images))
