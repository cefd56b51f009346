"""cosign's signature format (sigstore/cosign ``specs/SIGNATURE_SPEC.md``): payload and ``.sig`` manifest. No I/O.

A signature of manifest (or index) ``sha256:<hex>`` of image ``NAME`` is an OCI image manifest
tagged ``NAME:sha256-<hex>.sig`` (tag-based discovery). Each of its layers is one signature:

* the layer blob is the *payload*, cosign's simple-signing document
  ``{"critical":{"identity":{"docker-reference":REF},"image":{"docker-manifest-digest":DIGEST},
  "type":"cosign container image signature"},"optional":ANNOTATIONS-or-null}``, media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``;
* the layer's annotation ``dev.cosignproject.cosign/signature`` is base64 of the signature
  over the payload's exact bytes.

The manifest's config is what go-containerregistry writes for such an image (cosign's): an
OCI image config whose ``rootfs.diff_ids`` are the payloads' digests, one history entry each.

Verification (:func:`verify`) follows containers/image's rule for simple signing: the
signature is checked over the payload's bytes *first*, and only a payload that a trusted key
signed is parsed, strictly (duplicate JSON keys, unknown ``critical`` members or a different
``type`` refuse it); it must name exactly the digest being verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import InvalidImageError, InvalidReference
from ..manifest import Descriptor, Manifest, dump_json
from .keys import PrivateKey, PublicKey

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
#: A payload larger than this is no simple-signing document (cosign's are ~250 bytes).
MAX_PAYLOAD = 64 << 10
#: go-containerregistry's zero time: cosign's signature images carry it.
_ZERO_TIME = "0001-01-01T00:00:00Z"


def signature_tag(digest: Digest) -> str:
    """The tag of the signatures of ``digest``: ``sha256-<hex>.sig``."""
    return f"{digest.algorithm}-{digest.hex}.sig"


def signed_digest(tag: str) -> Digest | None:
    """The digest a ``sha256-<hex>.sig`` tag holds signatures of, or ``None`` for any other tag."""
    if not tag.endswith(".sig") or "-" not in tag:
        return None
    algorithm, _, rest = tag[: -len(".sig")].partition("-")
    try:
        return Digest.parse(f"{algorithm}:{rest}")
    except InvalidReference:
        return None


def payload(reference: str, digest: Digest, annotations: dict[str, str] | None = None) -> bytes:
    """The simple-signing payload for ``digest`` (cosign's key order; ``optional`` null without annotations)."""
    body = {
        "critical": {"identity": {"docker-reference": reference}, "image": {"docker-manifest-digest": str(digest)}, "type": PAYLOAD_TYPE},
        "optional": dict(annotations) if annotations else None,
    }
    return dump_json(body)


@dataclass(frozen=True)
class Payload:
    """A parsed simple-signing payload: the digest it names, the reference, the optional claims."""

    digest: Digest
    reference: str
    optional: dict[str, Any]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in a JSON object")
    return dict(pairs)


def _exact(obj: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != keys:
        raise InvalidImageError(f"{what}: expected exactly {sorted(keys)}")
    return obj


def parse_payload(data: bytes, what: str) -> Payload:
    """Parse a payload strictly (see the module docstring); :class:`InvalidImageError` if it is not one."""
    if len(data) > MAX_PAYLOAD:
        raise InvalidImageError(f"{what}: payload of {len(data)} bytes is no simple-signing document")
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidImageError(f"{what}: payload is not JSON without duplicate keys ({exc})") from None
    if not isinstance(obj, dict) or "critical" not in obj or not set(obj) <= {"critical", "optional"}:
        raise InvalidImageError(f"{what}: payload is not a simple-signing document")
    critical = _exact(obj["critical"], {"identity", "image", "type"}, f"{what}: payload critical")
    if critical["type"] != PAYLOAD_TYPE:
        raise InvalidImageError(f"{what}: payload type {critical['type']!r} is not {PAYLOAD_TYPE!r}")
    identity = _exact(critical["identity"], {"docker-reference"}, f"{what}: payload critical.identity")
    image = _exact(critical["image"], {"docker-manifest-digest"}, f"{what}: payload critical.image")
    reference, text = identity["docker-reference"], image["docker-manifest-digest"]
    if not isinstance(reference, str) or not isinstance(text, str):
        raise InvalidImageError(f"{what}: payload reference or digest is not a string")
    try:
        digest = Digest.parse(text)
    except InvalidReference:
        raise InvalidImageError(f"{what}: payload names no digest ({text[:80]!r})") from None
    optional = obj.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise InvalidImageError(f"{what}: payload optional is not an object")
    return Payload(digest, reference, optional or {})


@dataclass(frozen=True)
class Entry:
    """One signature of a ``.sig`` manifest: the payload's descriptor and the signature's bytes (``None``: not base64)."""

    desc: Descriptor
    signature: bytes | None
    encoded: str


def entry(desc: Descriptor) -> Entry | None:
    """The signature a layer descriptor carries, or ``None`` if it is no simple-signing layer with a signature annotation."""
    notes = desc.raw.get("annotations") or {}
    encoded = notes.get(SIGNATURE_ANNOTATION)
    if desc.media_type != mt.COSIGN_SIMPLESIGNING or not isinstance(encoded, str):
        return None
    try:
        signature: bytes | None = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        signature = None
    return Entry(desc, signature, encoded)


def entries(manifest: Manifest) -> list[Entry]:
    """The signatures a ``.sig`` manifest holds: its simple-signing layers with a signature annotation."""
    return [e for e in map(entry, manifest.layers) if e is not None]


def signed_layer(key: PrivateKey, data: bytes, annotations: dict[str, str] | None = None) -> Descriptor:
    """The layer descriptor of a new signature by ``key`` over payload ``data``."""
    encoded = base64.b64encode(key.sign(data)).decode()
    notes = {SIGNATURE_ANNOTATION: encoded}
    digest = Digest.of_bytes(data)
    raw = {"mediaType": mt.COSIGN_SIMPLESIGNING, "size": len(data), "digest": str(digest), "annotations": notes}
    return Descriptor(mt.COSIGN_SIMPLESIGNING, digest, len(data), raw)


def signature_image(layers: Sequence[Descriptor]) -> tuple[bytes, bytes]:
    """``(manifest, config)`` bytes of a ``.sig`` image holding ``layers`` (kept as given, raw fields too)."""
    config = dump_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in layers]},
            "config": {},
        }
    )
    manifest = dump_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "size": len(config), "digest": str(Digest.of_bytes(config))},
            "layers": [d.to_json() for d in layers],
        }
    )
    return manifest, config


@dataclass(frozen=True)
class Checked:
    """The outcome of one signature: ``key_id`` of the trusted key that made it (``None``: none did), and why not."""

    entry: Entry
    key_id: str | None
    problem: str | None
    optional: dict[str, Any]


def check(entry: Entry, data: bytes | str, keys: Iterable[PublicKey], digest: Digest, what: str) -> Checked:
    """Check one signature of ``digest`` over payload ``data`` (checked against its descriptor; a ``str``: why it is not there).

    The signature is checked over ``data`` with each key first; only then is the payload
    parsed and required to name exactly ``digest``.
    """
    if isinstance(data, str):
        return Checked(entry, None, data, {})
    if entry.signature is None:
        return Checked(entry, None, "its signature annotation is not base64", {})
    signer = next((k for k in keys if k.verify(entry.signature, data)), None)
    if signer is None:
        return Checked(entry, None, "not signed by a trusted key", {})
    try:
        parsed = parse_payload(data, what)
    except InvalidImageError as exc:
        return Checked(entry, None, str(exc), {})
    if parsed.digest != digest:
        return Checked(entry, None, f"its payload names {parsed.digest}, not {digest}", {})
    return Checked(entry, signer.key_id, None, parsed.optional)
