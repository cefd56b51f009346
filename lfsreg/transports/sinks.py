"""Writing image layouts: into a directory or a tar file, atomically.

A :class:`Sink` receives files by relative path. Blobs arrive as verifying readers: the sink
copies exactly the declared size, then calls ``finish()``, which raises if the bytes were not
what the descriptor promised; the output is then discarded, never left half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import InvalidImageError, UsageError
from ..formats.oci_layout import LAYOUT_FILE, blob_path, index_document, index_entry
from ..integrity import VerifiedReader, atomic_output
from ..manifest import Descriptor, dump_json

Opener = Callable[[], VerifiedReader]


@dataclass(frozen=True, slots=True)
class Blob:
    """A blob to write: where it goes in the layout, and how to read it (verifying)."""

    desc: Descriptor
    opener: Opener


class Sink(Protocol):
    """Destination of a layout's files. ``commit()`` publishes; ``abort()`` discards."""

    def has(self, path: str) -> bool:
        """True if ``path`` is already in the output."""
        ...

    def put(self, path: str, size: int, reader: VerifiedReader) -> None:
        """Copy exactly ``size`` bytes from ``reader``, then ``reader.finish()`` (which verifies)."""
        ...

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small file."""
        ...

    def read_existing(self, path: str) -> bytes | None:
        """The content ``path`` had before this write began, if any."""
        ...

    def commit(self) -> None:
        """Publish everything written, atomically."""
        ...

    def abort(self) -> None:
        """Discard everything written."""
        ...


def _member(path: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def make_parents(path: str) -> list[str]:
    """Create the missing parent directories of ``path``; return them, deepest first."""
    created: list[str] = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(created):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
    return created


def remove_parents(created: list[str]) -> None:
    """Undo :func:`make_parents` where the directories are still empty."""
    for directory in created:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


class TarStreamSink:
    """Writes a tar archive to a stream (a pipe to ``docker load``): nothing to rename or undo.

    On failure the stream simply ends early, which makes the receiver reject the archive.
    """

    def __init__(self, stream: BinaryIO, *, mode: str = "w|") -> None:
        self._tar = tarfile.open(fileobj=stream, mode=mode, format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
        self._written: set[str] = set()

    def has(self, path: str) -> bool:
        """True if ``path`` was already written."""
        return path in self._written

    def put(self, path: str, size: int, reader: VerifiedReader) -> None:
        """Add a member of ``size`` bytes from ``reader`` and verify it."""
        try:
            self._tar.addfile(_member(path, size), reader)  # type: ignore[arg-type]
        except OSError as exc:
            if "unexpected end of data" in str(exc):
                raise InvalidImageError(f"{reader.what}: shorter than the declared {size} bytes") from exc
            raise
        reader.finish()
        self._written.add(path)

    def put_bytes(self, path: str, data: bytes) -> None:
        """Add a small member."""
        self._tar.addfile(_member(path, len(data)), io.BytesIO(data))
        self._written.add(path)

    def read_existing(self, path: str) -> bytes | None:
        """A new archive has no earlier content."""
        return None

    def commit(self) -> None:
        """Write the end-of-archive marker."""
        self._tar.close()

    def abort(self) -> None:
        """Leave the stream truncated (the caller closes it): no end marker, no buffered tail."""
        self._tar.closed = True
        with contextlib.suppress(AttributeError):
            self._tar.fileobj.closed = True  # a stream-mode tarfile would flush its buffer when collected


class TarSink(TarStreamSink):
    """Writes a tar archive to a temporary file and renames it over ``path`` on commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory; give the archive a file name")
        self._created = make_parents(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, self._tmp = tempfile.mkstemp(prefix=".lfsreg-", suffix=".tar.tmp", dir=directory)
        self._file = os.fdopen(fd, "wb")
        super().__init__(self._file, mode="w")

    def commit(self) -> None:
        """Finish the archive and rename it into place."""
        super().commit()
        self._file.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard the partial archive."""
        super().abort()
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
        remove_parents(self._created)


class DirSink:
    """Writes into a directory: each file atomically; a new directory appears only on commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fresh = not os.path.exists(path)
        self._created: list[str] = []
        if self._fresh:
            parent = os.path.dirname(os.path.abspath(path))
            self._created = make_parents(path)
            self._root = tempfile.mkdtemp(prefix=".lfsreg-", dir=parent)
        else:
            if not os.path.isdir(path):
                raise InvalidImageError(f"{path}: exists and is not a directory")
            self._root = path

    def _full(self, path: str) -> str:
        return os.path.join(self._root, path)

    def has(self, path: str) -> bool:
        """True if the file already exists (blobs are content-addressed)."""
        return os.path.isfile(self._full(path))

    def put(self, path: str, size: int, reader: VerifiedReader) -> None:
        """Write a file of ``size`` bytes from ``reader`` and verify it before it appears."""
        with atomic_output(self._full(path)) as f:
            shutil.copyfileobj(reader, f, 1 << 20)  # type: ignore[misc]
            reader.finish()

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small file atomically."""
        with atomic_output(self._full(path)) as f:
            f.write(data)

    def read_existing(self, path: str) -> bytes | None:
        """The current content of ``path`` in an existing layout, if any."""
        try:
            with open(self._full(path), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def commit(self) -> None:
        """Publish a new directory by renaming it into place."""
        if self._fresh:
            os.chmod(self._root, 0o755)
            os.rename(self._root, self.path)

    def abort(self) -> None:
        """Remove a new directory; an existing layout keeps only complete, verified blobs."""
        if self._fresh:
            shutil.rmtree(self._root, ignore_errors=True)
            remove_parents(self._created)


def put_blob(sink: Sink, blob: Blob) -> None:
    """Write ``blob`` under ``blobs/`` unless it is already there."""
    path = blob_path(blob.desc)
    if not sink.has(path):
        sink.put(path, blob.desc.size, blob.opener())


@dataclass(frozen=True, slots=True)
class LayoutImage:
    """One image or index for an OCI layout: its root, the blobs under it, and its names."""

    root: Descriptor
    blobs: tuple[Blob, ...]
    refs: tuple[tuple[str | None, str | None], ...]  # (name, tag) pairs; (None, None) = untagged


def write_oci_layout(sink: Sink, images: list[LayoutImage]) -> None:
    """Write blobs, then ``index.json`` (merged with an existing one) and ``oci-layout``."""
    for image in images:
        for blob in image.blobs:
            put_blob(sink, blob)
    entries: list[dict[str, Any]] = []
    old = sink.read_existing("index.json")
    new_refs = {tag for image in images for _, tag in image.refs if tag}
    if old:
        for entry in json.loads(old).get("manifests") or []:
            ref = (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            if ref not in new_refs:
                entries.append(entry)
    for image in images:
        for name, tag in image.refs:
            entries.append(index_entry(image.root, name, tag))
    sink.put_bytes("oci-layout", LAYOUT_FILE)
    sink.put_bytes("index.json", index_document(entries))


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image for a ``docker load`` tarball: config, uncompressed layers, and names."""

    config: Blob
    layers: tuple[Blob, ...]  # digest == diff_id, media type application/vnd.oci.image.layer.v1.tar
    names: tuple[tuple[str, str], ...]  # (name, tag)


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
        if not sink.has(blob_path(desc)):
            sink.put_bytes(blob_path(desc), data)
        for name, tag in image.names or ((None, None),):  # type: ignore[assignment]
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
