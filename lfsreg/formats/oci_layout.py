"""OCI image layouts (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``): the codec.

Reading works on a directory or a tar (an OCI archive, or the OCI part of a Docker 25+
``docker save``) through :class:`lfsreg.formats.files.Files`.
"""

from __future__ import annotations

import json
from typing import Any

from .. import mediatypes as mt
from ..errors import InvalidImageError
from ..image import Root
from ..manifest import Descriptor, dump_json, load_json
from ..reference import familiar
from .files import Files

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
LAYOUT_FILE = dump_json({"imageLayoutVersion": "1.0.0"})


def blob_path(desc: Descriptor) -> str:
    """The path of a blob inside a layout."""
    return f"blobs/{desc.digest.algorithm}/{desc.digest.hex}"


def read_index(files: Files) -> list[Descriptor]:
    """Parse ``index.json`` of a layout; a ``null`` manifest list reads as empty."""
    if not files.exists("oci-layout"):
        raise InvalidImageError(f"{files.label}: not an OCI image layout (no oci-layout file)")
    layout = load_json(files.read_small("oci-layout"), f"{files.label}: oci-layout")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise InvalidImageError(f"{files.label}: unsupported imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    index = load_json(files.read_small("index.json"), f"{files.label}: index.json")
    items = index.get("manifests") or []
    if not isinstance(items, list):
        raise InvalidImageError(f"{files.label}: index.json 'manifests' is not a list")
    return [Descriptor.from_json(d, f"{files.label}: index.json manifests[{i}]") for i, d in enumerate(items)]


def root_of(desc: Descriptor) -> Root:
    """A :class:`Root` for an ``index.json`` entry, named by its annotations."""
    notes: dict[str, Any] = desc.raw.get("annotations") or {}
    names: list[str] = []
    refs: list[str] = []
    full = notes.get(IMAGE_NAME)
    ref = notes.get(REF_NAME)
    if isinstance(full, str) and full:
        names.append(familiar(full))
    if isinstance(ref, str) and ref:
        refs.append(ref)
        tail = ref.rsplit("/", 1)[-1]
        if not names and ":" in tail:  # a full NAME:TAG reference, as some tools write
            names.append(familiar(ref))
    return Root(desc, tuple(names), tuple(refs))


def index_entry(desc: Descriptor, name: str | None, tag: str | None) -> dict[str, Any]:
    """An ``index.json`` entry for ``desc`` annotated the way Docker 25+ and containerd do."""
    entry = {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}
    notes = {}
    if name and tag:
        notes[IMAGE_NAME] = f"{name}:{tag}"
    if tag:
        notes[REF_NAME] = tag
    if notes:
        entry["annotations"] = notes
    return entry


def index_document(entries: list[dict[str, Any]]) -> bytes:
    """The bytes of an ``index.json`` listing ``entries``."""
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}, indent=2).encode() + b"\n"


def index_entries(data: bytes, label: str) -> list[dict[str, Any]]:
    """The ``manifests`` of an existing ``index.json``, checked enough to merge new entries in.

    Raises :class:`InvalidImageError` (one line, naming the file) if it is not a JSON object
    whose ``manifests`` is a list of objects with an object (or no) ``annotations``.
    """
    what = f"{label}: index.json"
    try:
        index = load_json(data, what)
    except RecursionError:
        raise InvalidImageError(f"{what}: nested too deeply") from None
    items = index.get("manifests") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidImageError(f"{what}: 'manifests' is not a list of objects")
    if not all(isinstance(i.get("annotations", {}), dict | None) for i in items):
        raise InvalidImageError(f"{what}: an entry's 'annotations' is not an object")
    return items
