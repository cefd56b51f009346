"""Manifests, indexes, configs and descriptors, kept beside their exact bytes.

Digests are always computed over the bytes as stored; parsed objects are views used to walk
an image, never re-serialised in place of the original. ``Descriptor.raw`` keeps the original
JSON object so a rewritten manifest preserves fields lfsreg does not know (annotations, urls…).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import mediatypes as mt
from .digest import Digest
from .errors import InvalidImageError


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: media type, digest and size of a blob (OCI descriptor.md)."""

    media_type: str
    digest: Digest
    size: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any, what: str) -> Descriptor:
        """Parse a descriptor object; raise :class:`InvalidImageError` naming ``what`` if malformed.

        ``size`` must be a non-negative integer (not a boolean: JSON ``true`` is no size),
        ``mediaType`` a string, ``annotations`` an object of strings, ``platform`` an object.
        """
        if not isinstance(obj, dict):
            raise InvalidImageError(f"{what}: descriptor is not a JSON object")
        digest = obj.get("digest")
        if not isinstance(digest, str):
            raise InvalidImageError(f"{what}: descriptor has no digest")
        try:
            parsed = Digest.parse(digest)
        except ValueError as exc:
            raise InvalidImageError(f"{what}: malformed descriptor ({exc})") from exc
        size = json_int(obj.get("size"), f"{what}: descriptor size")
        media_type = obj.get("mediaType", "")
        if not isinstance(media_type, str):
            raise InvalidImageError(f"{what}: descriptor mediaType is not a string")
        check_annotations(obj, what)
        if "platform" in obj and not isinstance(obj["platform"], dict):
            raise InvalidImageError(f"{what}: descriptor platform is not an object")
        return cls(media_type, parsed, size, dict(obj))

    def to_json(self) -> dict[str, Any]:
        """Return the descriptor as a JSON object, keeping unknown fields of the original."""
        out = dict(self.raw)
        out.update({"mediaType": self.media_type, "digest": str(self.digest), "size": self.size})
        return out

    def platform(self) -> str | None:
        """``os/arch[/variant]`` from the descriptor's platform, if it has one."""
        p = self.raw.get("platform")
        if not isinstance(p, dict):
            return None
        parts = [str(p.get("os", "")), str(p.get("architecture", ""))]
        if p.get("variant"):
            parts.append(str(p["variant"]))
        return "/".join(parts)


MAX_INDEX_DEPTH = 4  # indexes of indexes: at most this many levels below the root one
MAX_JSON_DEPTH = 64  # real manifests, configs and records nest a handful of levels


def json_int(value: Any, what: str) -> int:
    """``value`` as a non-negative integer size or count; :class:`InvalidImageError` otherwise.

    ``bool`` is an ``int`` in Python, so JSON ``true`` would read as 1: it is refused.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidImageError(f"{what} is not a non-negative integer ({_show(value)})")
    return value


def check_annotations(obj: dict[str, Any], what: str) -> None:
    """Refuse an ``annotations`` member that is not an object of strings (OCI annotations.md)."""
    notes = obj.get("annotations")
    if notes is None:
        return
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise InvalidImageError(f"{what}: annotations is not an object of strings")


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (bool, int, float, str)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return True


def parse_json(data: bytes, what: str) -> Any:
    """Decode any JSON document or raise :class:`InvalidImageError` naming ``what``.

    Documents nested deeper than :data:`MAX_JSON_DEPTH` are refused (Python's decoder would
    otherwise recurse until ``RecursionError``, and so would every later ``json.dumps``).
    """
    try:
        obj = json.loads(data)
    except RecursionError:
        raise InvalidImageError(f"{what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidImageError(f"{what}: not valid JSON ({exc})") from exc
    # A document can nest no deeper than it has brackets: the walk is for the rare one with many.
    if (data.count(b"{") + data.count(b"[") > MAX_JSON_DEPTH if isinstance(data, bytes) else True) and not _depth_ok(obj):
        raise InvalidImageError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return obj


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """Decode a JSON object or raise :class:`InvalidImageError` naming ``what``."""
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise InvalidImageError(f"{what}: expected a JSON object")
    return obj


def sniff_media_type(obj: dict[str, Any]) -> str:
    """The media type of a manifest-like JSON object, from ``mediaType`` or its shape."""
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in obj:
        return mt.OCI_INDEX
    return mt.OCI_MANIFEST


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest: config descriptor plus layers, base first."""

    data: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    obj: dict[str, Any] = field(compare=False)

    @property
    def digest(self) -> Digest:
        """Digest of the stored bytes."""
        return Digest.of_bytes(self.data)


@dataclass(frozen=True, slots=True)
class Index:
    """An image index / manifest list: descriptors of manifests (or nested indexes)."""

    data: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    obj: dict[str, Any] = field(compare=False)

    @property
    def digest(self) -> Digest:
        """Digest of the stored bytes."""
        return Digest.of_bytes(self.data)


def parse_manifest(data: bytes, what: str) -> Manifest | Index:
    """Parse manifest or index bytes (kept verbatim in the result)."""
    obj = load_json(data, what)
    media_type = sniff_media_type(obj)
    version = obj.get("schemaVersion", 2)
    if json_int(version, f"{what}: schemaVersion") != 2:
        raise InvalidImageError(f"{what}: unsupported schemaVersion {version}")
    check_annotations(obj, what)
    if mt.is_index(media_type):
        items = obj.get("manifests") or []
        if not isinstance(items, list):
            raise InvalidImageError(f"{what}: 'manifests' is not a list")
        descs = tuple(Descriptor.from_json(d, f"{what} manifests[{i}]") for i, d in enumerate(items))
        return Index(data, media_type, descs, obj)
    if mt.is_manifest(media_type):
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise InvalidImageError(f"{what}: 'layers' is not a list")
        config = Descriptor.from_json(obj.get("config"), f"{what} config")
        descs = tuple(Descriptor.from_json(d, f"{what} layers[{i}]") for i, d in enumerate(layers))
        return Manifest(data, media_type, config, descs, obj)
    raise InvalidImageError(f"{what}: unsupported media type {media_type!r}")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config lfsreg uses; ``data`` holds the exact bytes."""

    data: bytes
    diff_ids: tuple[Digest, ...]
    created: str | None
    os: str
    architecture: str
    variant: str | None

    @property
    def digest(self) -> Digest:
        """The image ID: the digest of the config bytes."""
        return Digest.of_bytes(self.data)

    @property
    def platform(self) -> str:
        """``os/arch[/variant]``."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_config(data: bytes, what: str) -> ImageConfig:
    """Parse an image config; raise :class:`InvalidImageError` if ``rootfs.diff_ids`` is missing."""
    obj = load_json(data, what)
    rootfs = obj.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise InvalidImageError(f"{what}: missing rootfs.diff_ids")
    if not all(isinstance(d, str) for d in ids):
        raise InvalidImageError(f"{what}: a diff_id is not a string")
    try:
        diff_ids = tuple(Digest.parse(d) for d in ids)
    except ValueError as exc:
        raise InvalidImageError(f"{what}: bad diff_id ({exc})") from exc
    created = obj.get("created")
    strings = {k: obj.get(k) for k in ("os", "architecture", "variant")}
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            raise InvalidImageError(f"{what}: {key} is not a string")
    return ImageConfig(
        data,
        diff_ids,
        created if isinstance(created, str) else None,
        strings["os"] or "",
        strings["architecture"] or "",
        strings["variant"] or None,
    )


# -- the common case, cheaply ---------------------------------------------------------------------
# A walk over a whole registry (verify, du) parses tens of thousands of manifests and configs.
# These return what the parsers above would, for the one shape lfsreg writes and nearly every
# image has, without building the objects; on anything else ``None``, and the caller asks the
# parsers (which accept or name the problem). They accept nothing the parsers refuse.

_SHA256_DIGEST = re.compile(r"sha256:([a-f0-9]{64})")
_CONFIG_STRINGS = ("os", "architecture", "variant")
#: ``(mediaType, sha256 hex, size)`` of a descriptor :meth:`Descriptor.from_json` accepts
PlainDescriptor = tuple[str, str, int]
#: config, layers and the layers' JSON objects of an image manifest, as :func:`plain_manifest` returns them
PlainManifest = tuple[PlainDescriptor, list[PlainDescriptor], list[dict[str, Any]]]


def _plain_descriptor(obj: Any) -> PlainDescriptor | None:
    if type(obj) is not dict or "annotations" in obj or "platform" in obj:
        return None
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if type(digest) is not str or type(size) is not int or size < 0 or type(media_type) is not str:
        return None
    exact = _SHA256_DIGEST.fullmatch(digest)
    return None if exact is None else (media_type, exact.group(1), size)


def _plain_document(data: bytes) -> dict[str, Any] | None:
    """The JSON object :func:`load_json` returns, when it surely would."""
    if data.count(b"{") + data.count(b"[") > MAX_JSON_DEPTH:
        return None  # load_json decides how deep it nests
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return obj if type(obj) is dict else None


def plain_manifest(data: bytes) -> PlainManifest | None:
    """Config and layers of an image manifest :func:`parse_manifest` accepts (and each layer's JSON object); ``None``: ask it.

    ``None`` for an index, another algorithm than sha256, annotations or a platform on a
    descriptor, and whatever :func:`parse_manifest` would refuse.
    """
    obj = _plain_document(data)
    if obj is None:
        return None
    media_type, version, notes, layers = obj.get("mediaType"), obj.get("schemaVersion", 2), obj.get("annotations"), obj.get("layers")
    if type(media_type) is not str or not mt.is_manifest(media_type) or type(version) is not int or version != 2:
        return None
    if notes is not None and (type(notes) is not dict or not all(type(v) is str for v in notes.values())):
        return None
    config = _plain_descriptor(obj.get("config"))
    if config is None or type(layers) is not list:
        return None
    descs = [_plain_descriptor(d) for d in layers]
    return None if None in descs else (config, descs, layers)  # type: ignore[return-value]


def plain_diff_ids(data: bytes) -> list[str] | None:
    """The sha256 hex diff_ids of an image config :func:`parse_config` accepts; ``None``: ask it."""
    obj = _plain_document(data)
    if obj is None:
        return None
    rootfs = obj.get("rootfs")
    ids = rootfs.get("diff_ids") if type(rootfs) is dict else None
    if type(ids) is not list or any(obj.get(k) is not None and type(obj.get(k)) is not str for k in _CONFIG_STRINGS):
        return None
    out = []
    for text in ids:
        exact = _SHA256_DIGEST.fullmatch(text) if type(text) is str else None
        if exact is None:
            return None
        out.append(exact.group(1))
    return out


def dump_json(obj: Any) -> bytes:
    """Serialise a document lfsreg creates (compact, stable key order as given)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
