"""The contracts between transports (image sources and destinations) and the operations.

An :class:`ImageSource` offers *roots* (a manifest or index, with the names it carries) and
opens blobs by descriptor. It returns RAW, UNVERIFIED bytes: the caller verifies every blob
against its descriptor while reading (see :class:`lfsreg.integrity.VerifiedReader`).

A source may also have an optional capability, found by type the way go-containerregistry
finds optional layer methods: a :class:`StagingSource` stages layers itself while it reads
(a stream that cannot be read twice, such as a Docker engine's ``docker save``) and hands
them over ready for upload.

A destination receives images whose blobs verify as they are read, and writes them all or
nothing: an :class:`ArchiveDestination` takes them as ``docker load`` wants them (one image per
platform, plain layers), a :class:`LayoutDestination` as stored (indexes whole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from .digest import Digest
from .integrity import VerifiedReader
from .layers import LayerStaging, PreparedLayer
from .manifest import Descriptor


@dataclass(frozen=True, slots=True)
class Root:
    """A top-level image in a source.

    Attributes:
        descriptor: the manifest or index descriptor.
        names: ``NAME:TAG`` references the source gives it (familiar form); may be empty.
        refs: other labels that select it (an OCI layout's ``ref.name``, a tag alone…).
    """

    descriptor: Descriptor
    names: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()


class ImageSource(Protocol):
    """Read side of a transport. Thread-safe ``open_blob``; call ``close()`` when done."""

    label: str

    def roots(self) -> list[Root]:
        """The images the source holds, in source order."""
        ...

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """Open a blob (manifest, config or layer) for reading; raw and unverified."""
        ...

    def close(self) -> None:
        """Release files, temporary copies and staged layers nobody took."""
        ...


class LayerRecord(Protocol):
    """What a registry knows of a layer by its uncompressed digest."""

    @property
    def desc(self) -> Descriptor:
        """The stored blob."""
        ...

    @property
    def uncompressed_size(self) -> int | None:
        """Its size after decompression, if recorded."""
        ...


class RegistryContents(Protocol):
    """The part of a registry a staging source consults to skip what is already there."""

    def has_blob(self, digest: Digest) -> bool:
        """True if a manifest, index or config with this digest is stored."""
        ...

    def blob(self, digest: Digest) -> bytes:
        """A stored manifest, index or config (verified)."""
        ...

    def stored_layer(self, diff_id: Digest) -> LayerRecord | None:
        """The stored layer whose uncompressed digest is ``diff_id``, if any."""
        ...


@runtime_checkable
class StagingSource(Protocol):
    """Optional capability of an :class:`ImageSource`: it stages its layers itself.

    The push calls :meth:`prepare` once, before ``roots()``; the source reads what the
    registry lacks and stages it (verified, compressed as asked). :meth:`staged_layer` then
    hands over a layer ready for upload instead of having it read through ``open_blob``.
    """

    def prepare(self, registry: RegistryContents, staging: LayerStaging) -> None:
        """Read the source once, staging every layer ``registry`` does not hold."""
        ...

    def staged_layer(self, desc: Descriptor) -> PreparedLayer | None:
        """The staged layer for the source layer ``desc``, or ``None`` to read it as usual."""
        ...


Opener = Callable[[], VerifiedReader]


@dataclass(frozen=True, slots=True)
class Blob:
    """A blob to write: its descriptor, and how to read it (verifying)."""

    desc: Descriptor
    opener: Opener


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image for a ``docker load`` tarball: config, uncompressed layers, and names."""

    config: Blob
    layers: tuple[Blob, ...]  # digest == diff_id, media type application/vnd.oci.image.layer.v1.tar
    names: tuple[tuple[str, str], ...]  # (name, tag)


@dataclass(frozen=True, slots=True)
class LayoutImage:
    """One image or index for an OCI layout: its root, the blobs under it, and its names."""

    root: Descriptor
    blobs: tuple[Blob, ...]
    refs: tuple[tuple[str | None, str | None], ...]  # (name, tag) pairs; (None, None) = untagged


@runtime_checkable
class ArchiveDestination(Protocol):
    """Write side taking images as ``docker load`` does (a docker-archive, a Docker engine)."""

    label: str

    def write_archive(self, images: list[ArchiveImage]) -> None:
        """Write every image, or nothing; blobs verify as they are read."""
        ...


@runtime_checkable
class LayoutDestination(Protocol):
    """Write side taking images as stored, indexes whole (an OCI layout or archive)."""

    label: str
    ref_name: str | None  # the ``ref.name`` to give the one image written, if the user named one

    def write_layout(self, images: list[LayoutImage]) -> None:
        """Write every image, or nothing new; blobs verify as they are read."""
        ...


@runtime_checkable
class HeldBlobs(Protocol):
    """A layout destination that can say, before any blob is read, which blobs it already holds (a registry: ``HEAD``).

    The caller then does not fetch those (no LFS download for a blob the destination has), and
    :meth:`LayoutDestination.write_layout` does not read them.
    """

    def held(self, images: list[LayoutImage]) -> set[Digest]:
        """Digests of the blobs under ``images`` that the destination holds wherever they go."""
        ...


ImageDestination = ArchiveDestination | LayoutDestination
