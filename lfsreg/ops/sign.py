"""Signing images in a registry, and checking their signatures, in cosign's format (lfsreg/signing/cosign.py).

:func:`sign_images` adds one signature per image digest to the digest's ``.sig`` manifest
(tag ``NAME:sha256-<hex>.sig``, created if absent, extended if present), all in ONE commit:
the payloads, the new ``.sig`` manifests and their configs are small git files under
``blobs/`` (docs/format.md, "Signatures"). A signature by the same key over the same payload
already there is not added twice. The change set is rebuilt from the tip on every retry, so
a concurrent signer's signatures are kept.

:func:`signatures` reads what a registry holds for one digest and checks each signature
(:func:`lfsreg.signing.cosign.check`): the payload blob against its descriptor's digest and
size, the signature over the payload's exact bytes, the payload naming exactly that digest.
:func:`require_signed` raises :class:`SignatureError` unless one of them is by a given key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..digest import Digest
from ..errors import InvalidImageError, LfsregError, SignatureError
from ..manifest import Descriptor, Index, Manifest, parse_manifest
from ..reference import ImageRef
from ..registry import layout
from ..registry.transaction import Publisher
from ..registry.view import RegistryView
from ..signing import cosign
from ..signing.keys import PrivateKey, PublicKey

#: A ``.sig`` manifest larger than this is not read (cosign's hold a few hundred bytes per signature).
MAX_SIGNATURE_MANIFEST = 4 << 20


@dataclass(frozen=True)
class Signed:
    """One digest a sign command signed (``added`` False: the key had signed that payload already)."""

    name: str
    digest: Digest
    tag: str
    added: bool


@dataclass
class SignResult:
    """What :func:`sign_images` did: each digest, and the commit (``None``: nothing new)."""

    signed: list[Signed] = field(default_factory=list)
    commit: str | None = None
    key_id: str = ""


def targets(view: RegistryView, refs: Sequence[ImageRef], recursive: bool) -> list[tuple[str, Digest]]:
    """``(name, digest)`` to sign for ``refs``: each image's digest, and with ``recursive`` an index's children."""
    out: dict[tuple[str, Digest], None] = {}
    for ref in refs:
        digest = view.resolve(ref)
        out[(ref.name, digest)] = None
        if recursive:
            doc = parse_manifest(view.blob(digest), f"{ref.name}@{digest}")
            if isinstance(doc, Index):
                for child in doc.manifests:
                    view.blob(child.digest)  # signing a manifest the registry lacks would sign nothing
                    out[(ref.name, child.digest)] = None
    return list(out)


def _existing(view: RegistryView, name: str, digest: Digest) -> list[Descriptor]:
    """The layers of the ``.sig`` manifest of ``digest`` in ``name`` (none if there is none)."""
    tag_file = view.snapshot.read(view.layout.tag_path(name, cosign.signature_tag(digest)))
    if tag_file is None:
        return []
    manifest = _signature_manifest(view, name, tag_file)
    return list(manifest.layers)


def _signature_manifest(view: RegistryView, name: str, tag_file: bytes) -> Manifest:
    what = f"{view.label}: signatures of {name}"
    found = layout.parse_tag(tag_file)
    if found is None:
        raise InvalidImageError(f"{what}: the .sig tag file is damaged")
    data = view.blob(found)  # checked against its digest
    if len(data) > MAX_SIGNATURE_MANIFEST:
        raise InvalidImageError(f"{what}: .sig manifest {found} is too large ({len(data)} bytes)")
    doc = parse_manifest(data, f"{what}: {found}")
    if not isinstance(doc, Manifest):
        raise InvalidImageError(f"{what}: {found} is an index, not a signature manifest")
    return doc


def _payload(view: RegistryView, desc: Descriptor) -> bytes | str:
    """A payload's bytes from ``blobs/``, checked against its descriptor's digest and size; else why not."""
    if desc.size > cosign.MAX_PAYLOAD:
        return f"payload {desc.digest} is too large ({desc.size} bytes)"
    try:
        data = view.blob(desc.digest)
    except LfsregError as exc:  # absent, or bytes that are not its digest
        return str(exc).removeprefix(f"{view.label}: ").replace("blob", "payload blob", 1)
    return data if len(data) == desc.size else f"payload {desc.digest} has {len(data)} bytes, its descriptor says {desc.size}"


def sign_images(
    publisher: Publisher, view: RegistryView, refs: Sequence[ImageRef], key: PrivateKey, annotations: dict[str, str], recursive: bool
) -> SignResult:
    """Sign ``refs`` (see the module docstring); every reference is resolved before anything is written.

    Raises:
        ImageNotFound: a reference the registry lacks (nothing is written).
        InvalidImageError: a damaged ``.sig`` manifest already there.
        ConcurrentUpdateError: the registry kept moving under the commit.
    """
    wanted = targets(view, refs, recursive)
    result = SignResult(key_id=key.public.key_id)

    def build(tip: RegistryView) -> dict[str, bytes | None]:
        changes, result.signed = signature_changes(tip, wanted, key, annotations)
        return changes

    lines = [f"{s_name}@{s_digest}" for s_name, s_digest in wanted]
    message = f"sign {', '.join(lines[:3])}{' …' if len(lines) > 3 else ''}\n\nkey {key.public.key_id}\n" + "".join(f"{x}\n" for x in lines)
    result.commit = publisher.publish(build, message)
    return result


def signature_changes(
    tip: RegistryView, wanted: Sequence[tuple[str, Digest]], key: PrivateKey, annotations: dict[str, str]
) -> tuple[dict[str, bytes | None], list[Signed]]:
    """The tree changes that add a signature by ``key`` for each ``(name, digest)`` on top of ``tip``, and what they sign.

    Also what ``push --sign-key`` adds to its own commit (the digests it pushes need not be in ``tip``).
    """
    changes: dict[str, bytes | None] = {}
    signed = []
    for name, digest in wanted:
        data = cosign.payload(name, digest, annotations)
        layers = _existing(tip, name, digest)
        tag = cosign.signature_tag(digest)
        if any(_same(layer, data, key.public) for layer in layers):
            signed.append(Signed(name, digest, tag, False))
            continue
        layers.append(cosign.signed_layer(key, data, annotations))
        manifest, config = cosign.signature_image(layers)
        changes[tip.layout.blob_path(Digest.of_bytes(data))] = data
        changes[tip.layout.blob_path(Digest.of_bytes(config))] = config
        changes[tip.layout.blob_path(Digest.of_bytes(manifest))] = manifest
        changes[tip.layout.tag_path(name, tag)] = layout.tag_content(Digest.of_bytes(manifest))
        signed.append(Signed(name, digest, tag, True))
    return changes, signed


def _same(layer: Descriptor, data: bytes, public: PublicKey) -> bool:
    """True if ``layer`` is a signature by ``public`` over exactly ``data``."""
    if layer.digest != Digest.of_bytes(data):
        return False
    entry = cosign.entry(layer)
    return entry is not None and entry.signature is not None and public.verify(entry.signature, data)


def signatures(view: RegistryView, name: str, digest: Digest, keys: Iterable[PublicKey]) -> list[cosign.Checked]:
    """Every signature ``name`` holds for ``digest``, each checked against ``keys`` (see the module docstring).

    A ``.sig`` manifest that cannot be read (damaged, an index, too large) raises its error.
    """
    tag_file = view.snapshot.read(view.layout.tag_path(name, cosign.signature_tag(digest)))
    if tag_file is None:
        return []
    manifest = _signature_manifest(view, name, tag_file)
    keys = list(keys)
    what = f"{view.label}: signature of {name}@{digest}"
    return [cosign.check(entry, _payload(view, entry.desc), keys, digest, what) for entry in cosign.entries(manifest)]


def require_signed(view: RegistryView, name: str, digest: Digest, keys: Sequence[PublicKey], why: str) -> cosign.Checked:
    """The first valid signature of ``digest`` in ``name`` by one of ``keys``; :class:`SignatureError` if none.

    ``why`` says where the keys come from (``--verify-key``, the trust policy), for the message.
    """
    try:
        found = signatures(view, name, digest, keys)
    except LfsregError as exc:
        raise SignatureError(f"{name}@{digest}: its signatures cannot be read: {exc}") from None
    good = next((c for c in found if c.key_id is not None), None)
    if good is not None:
        return good
    if not found:
        missing = f"it has none ({cosign.signature_tag(digest)} is absent)"
    else:
        reasons = sorted({c.problem or "" for c in found})
        missing = f"none of its {len(found)} signature(s) counts: {'; '.join(reasons)}"
    raise SignatureError(
        f"{name}@{digest}: needs a valid signature by {why}: {missing}",
        hint=f"sign it with: lfsreg sign {view.label} {name}@{digest} --key KEY",
    )


def require_signed_image(view: RegistryView, name: str, digest: Digest, keys: Sequence[PublicKey], why: str) -> cosign.Checked:
    """:func:`require_signed`, or the signature of an index of ``name`` that holds ``digest`` (a platform manifest).

    A multi-platform image is signed once, on its index (``cosign sign`` without
    ``--recursive``): its platform manifests, asked for by digest, count as signed with it.
    """
    try:
        return require_signed(view, name, digest, keys, why)
    except SignatureError as exc:
        refusal = exc
    for tag, _ in view.tags(name):
        parent = cosign.signed_digest(tag)
        if parent is None or parent == digest:
            continue
        try:
            doc = parse_manifest(view.blob(parent), f"{name}@{parent}")
            if isinstance(doc, Index) and any(c.digest == digest for c in doc.manifests):
                return require_signed(view, name, parent, keys, why)
        except LfsregError:
            continue
    raise refusal
