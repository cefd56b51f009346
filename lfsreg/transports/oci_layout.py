"""The ``oci:`` and ``oci-archive:`` transports: OCI image layouts in a directory or a tar.

A source offers every ``index.json`` entry, named by its annotations. A destination writes
the blobs of each image as stored (indexes whole) and merges ``index.json``: an entry with
the same ``ref.name`` is replaced, others are kept.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import ImageNotFound, InvalidImageError
from ..formats.files import Files, open_files
from ..formats.oci_layout import LAYOUT_FILE, REF_NAME, blob_path, index_document, index_entries, index_entry, read_index, root_of
from ..image import LayoutImage, Root
from ..manifest import Descriptor
from ..reference import familiar
from .sinks import DirSink, Sink, TarSink, put_blob, write_all


class OciLayoutSource:
    """An :class:`lfsreg.image.ImageSource` over an OCI layout directory or archive."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.label = files.label
        self._roots = [root_of(d) for d in read_index(files)]

    def roots(self) -> list[Root]:
        """Every entry of ``index.json``."""
        return list(self._roots)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """Open ``blobs/<alg>/<hex>``."""
        return self.files.open(blob_path(desc))

    def close(self) -> None:
        """Close the underlying files."""
        self.files.close()


def open_source(path: str, spool_dir: str | None) -> OciLayoutSource:
    """Open the layout directory or archive at ``path``."""
    files = open_files(path, spool_dir=spool_dir)
    try:
        return OciLayoutSource(files)
    except BaseException:
        files.close()
        raise


def select(roots: list[Root], selector: str | None, label: str) -> list[Root]:
    """Every entry, or those whose ``ref.name`` (or full image name) is ``selector``."""
    if selector is None:
        return roots
    found = [r for r in roots if familiar(selector) in r.names or selector in r.refs]
    if not found:
        have = sorted({n for r in roots for n in r.names + r.refs})
        raise ImageNotFound(f"{label}: no image {selector!r} in the source", hint=f"it has: {', '.join(have) or 'no names'}")
    return found


def write_oci_layout(sink: Sink, images: list[LayoutImage], existing: list[dict[str, Any]]) -> None:
    """Write blobs, then ``index.json`` (``existing`` entries merged in) and ``oci-layout``."""
    for image in images:
        for blob in image.blobs:
            put_blob(sink, blob)
    new_refs = {tag for image in images for _, tag in image.refs if tag}
    entries = [e for e in existing if (e.get("annotations") or {}).get(REF_NAME) not in new_refs]
    for image in images:
        for name, tag in image.refs:
            entries.append(index_entry(image.root, name, tag))
    sink.put_bytes("oci-layout", LAYOUT_FILE)
    sink.put_bytes("index.json", index_document(entries))


class OciLayoutDestination:
    """An :class:`lfsreg.image.LayoutDestination`: a layout directory (``oci:``) or tar (``oci-archive:``).

    A new directory or archive appears only when everything verified. An existing directory
    gains complete, verified blobs only; its ``index.json`` is checked when it is opened, so a
    damaged one fails before anything is fetched.
    """

    def __init__(self, path: str, ref_name: str | None, *, archive: bool) -> None:
        self.path = path
        self.ref_name = ref_name
        self.archive = archive
        self.label = f"{'oci-archive' if archive else 'oci'}:{path}"
        self._existing: list[dict[str, Any]] = []
        index = os.path.join(path, "index.json")
        if not archive and os.path.isdir(path) and os.path.lexists(index):
            if not os.path.isfile(index) or os.path.islink(index):
                raise InvalidImageError(f"{path}: index.json is not a regular file")
            with open(index, "rb") as f:
                self._existing = index_entries(f.read(), path)

    def write_layout(self, images: list[LayoutImage]) -> None:
        """Write ``images``; see the class docstring for what appears when."""
        sink: Sink = TarSink(self.path) if self.archive else DirSink(self.path)
        write_all(sink, lambda s: write_oci_layout(s, images, self._existing))
