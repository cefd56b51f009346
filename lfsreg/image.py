"""The contract between image sources and the copy operations.

An :class:`ImageSource` offers *roots* (a manifest or index, with the names it carries) and
opens blobs by descriptor. It returns RAW, UNVERIFIED bytes: the caller verifies every blob
against its descriptor while reading (see :class:`lfsreg.integrity.VerifiedReader`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

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
        """Release files and temporary copies."""
        ...
