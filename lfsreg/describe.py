"""What images are made of: ``inspect`` (one image in full) and ``images`` (a summary row per tag)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import mediatypes as mt
from .digest import Digest
from .errors import LfsregError
from .manifest import Descriptor, Index, Manifest, parse_config, parse_manifest
from .reference import ImageRef
from .registry.view import RegistryView


@dataclass(frozen=True, slots=True)
class ImageSummary:
    """A row of ``lfsreg images``: sizes are of the stored (compressed) blobs."""

    name: str
    tag: str
    digest: Digest
    image_id: Digest | None
    created: str | None
    size: int
    platforms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnreadableImage:
    """A row of ``lfsreg images`` that could not be read: which tag (``None``: the whole name), and why."""

    name: str
    tag: str | None
    digest: Digest | None
    error: LfsregError

    @property
    def message(self) -> str:
        """One line: the image, then the error (which names the damaged object)."""
        what = f"{self.name}:{self.tag}" if self.tag is not None else self.name
        return f"{what}: {self.error}"


def _image(view: RegistryView, manifest: Manifest) -> dict[str, Any]:
    if not mt.is_image_config(manifest.config.media_type):
        return {
            "manifest": str(manifest.digest),
            "mediaType": manifest.media_type,
            "artifactType": manifest.obj.get("artifactType") or manifest.config.media_type,
            "platform": None,
            "size": manifest.config.size + sum(layer.size for layer in manifest.layers),
            "layers": [{"digest": str(x.digest), "mediaType": x.media_type, "size": x.size, "compression": None} for x in manifest.layers],
        }
    config_bytes = view.blob(manifest.config.digest)
    config = parse_config(config_bytes, str(manifest.config.digest))
    raw = json.loads(config_bytes)
    inner = raw.get("config") or {}
    layers = []
    for layer, diff_id in zip(manifest.layers, config.diff_ids, strict=False):
        stored = view.stored_layer(diff_id)
        layers.append(
            {
                "digest": str(layer.digest),
                "mediaType": layer.media_type,
                "compression": mt.layer_compression(layer.media_type),
                "size": layer.size,
                "diffID": str(diff_id),
                "uncompressedSize": stored.uncompressed_size if stored else None,
            }
        )
    return {
        "manifest": str(manifest.digest),
        "mediaType": manifest.media_type,
        "imageID": str(manifest.config.digest),
        "platform": config.platform,
        "created": config.created,
        "author": raw.get("author"),
        "config": {k: inner.get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "Labels", "ExposedPorts") if inner.get(k)},
        "size": manifest.config.size + sum(layer.size for layer in manifest.layers),
        "layers": layers,
    }


def _distinct(children: tuple[Descriptor, ...]) -> list[Descriptor]:
    """An index's children, each digest once (an index may list one child many times)."""
    first: dict[Digest, Descriptor] = {}
    for child in children:
        first.setdefault(child.digest, child)
    return list(first.values())


def inspect_image(view: RegistryView, ref: ImageRef, digest: Digest) -> dict[str, Any]:
    """Describe the image ``ref`` (resolved to ``digest``); an index lists every platform."""
    parsed = parse_manifest(view.blob(digest), str(ref))
    out: dict[str, Any] = {"name": ref.name, "tag": ref.tag, "digest": str(digest), "mediaType": parsed.media_type}
    if isinstance(parsed, Index):
        images = []
        for child in _distinct(parsed.manifests):
            sub = parse_manifest(view.blob(child.digest), str(child.digest))
            if isinstance(sub, Manifest):
                entry = _image(view, sub)
                entry["platform"] = child.platform() or entry["platform"]
                images.append(entry)
        out["platforms"] = [i["platform"] for i in images if i["platform"]]
        out["images"] = images
    else:
        image = _image(view, parsed)
        out["platforms"] = [image["platform"]] if image["platform"] else []
        out.update(image)
    return out


def summarize(view: RegistryView, digest: Digest) -> ImageSummary:
    """The summary of the manifest or index ``digest`` (``name``/``tag`` left empty for the caller)."""
    data = view.blob(digest)
    parsed = parse_manifest(data, str(digest))
    children = _distinct(parsed.manifests) if isinstance(parsed, Index) else []
    manifests = [parse_manifest(view.blob(c.digest), str(c.digest)) for c in children] if isinstance(parsed, Index) else [parsed]
    size = len(data)
    image_id = created = None
    platforms = []
    for m in manifests:
        if isinstance(m, Index):
            continue
        image_id = image_id or m.config.digest
        size += m.config.size + sum(layer.size for layer in m.layers)
        if mt.is_image_config(m.config.media_type):
            config = parse_config(view.blob(m.config.digest), str(m.config.digest))
            created = created or config.created
            platforms.append(config.platform)
    return ImageSummary("", "", digest, image_id if not isinstance(parsed, Index) else digest, created, size, tuple(platforms))
