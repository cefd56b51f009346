"""Manifests, tags and blobs written one document at a time (the distribution API's push), each one commit.

``push`` (ops/push.py) brings whole images from a source; this module takes what a registry
client sends piece by piece: blobs first (uploaded into the LFS store by ``lfsreg serve``,
"staged": in the store, not yet in the tree), then a manifest naming them. Putting a manifest
checks it completely before anything is written:

* its bytes are the digest the client named (exact bytes are stored, never re-serialised);
* it parses as an image manifest or index whose media type is the one the client declared;
* every blob it references is in the registry's tree or in the LFS store: a config is copied
  into ``blobs/`` (from the tree or from LFS, its digest checked), a layer gets its pointer,
  an index's children must be stored manifests. A layer the distribution spec lets a registry
  lack (non-distributable, foreign) is not required and gets no pointer.

and then writes ONE commit (the manifest, its config, layer pointers, the tags) through the
publisher's compare-and-swap loop, re-applied on the new tip when the branch moved, as every
push is. A manifest with a ``subject`` is stored like any other (its referrers are found by
reading stored manifests; docs/format.md). Bad input raises before anything is written.

Deletes are commits too: a tag; a manifest by digest (the name's tags that point at it, and the
manifest itself unless a tag of another name still needs it); a blob (its file or pointer in the
tree). History keeps every deleted document: ``lfsreg rollback`` or ``git revert`` restore them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, CorruptContentError, ImageNotFound, InvalidImageError, LfsregError, PermissionDeniedError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..lfs.store import LfsStore
from ..manifest import Descriptor, Index, Manifest, load_json, parse_manifest
from ..reference import validate_name, validate_tag
from ..registry import layout
from ..registry.closure import Closure
from ..registry.transaction import Publisher
from ..registry.view import RegistryView

log = logging.getLogger(__name__)
#: The largest manifest or config accepted (the spec asks registries to take at least 4 MB).
MAX_MANIFEST = 16 << 20

# Layers a registry may lack (image-spec: non-distributable layers; Docker's foreign layers).
_OPTIONAL_LAYER = ("nondistributable", "foreign")


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a manifest put stored: its digest and media type, its subject, the commit (``None``: nothing changed)."""

    digest: Digest
    media_type: str
    subject: Digest | None
    commit: str | None
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class _Documents:
    """What one manifest put writes (beside its tags): git files by digest, layer pointers by digest."""

    blobs: dict[Digest, bytes] = field(default_factory=dict)
    layers: dict[Digest, LfsObject] = field(default_factory=dict)

    def changes(self, view: RegistryView) -> dict[str, bytes | None]:
        """Paths to write on top of ``view``: whatever of these documents it lacks."""
        out: dict[str, bytes | None] = {}
        for digest, data in self.blobs.items():
            if not view.has_blob(digest):
                out[layout.blob_path(digest)] = data
        for digest, obj in self.layers.items():
            if not view.has_layer(digest):  # a pointer, or chunks (a directory): either holds the layer
                out[layout.layer_path(digest)] = lfs_pointer.encode(obj)
        return out


def base_media_type(content_type: str | None) -> str | None:
    """``Content-Type`` without parameters (``; charset=…``), lowercased; ``None`` if absent or empty."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def parse_put(data: bytes, content_type: str | None, digest: Digest | None, what: str) -> tuple[Manifest | Index, Digest | None]:
    """The manifest or index a client sends, and its ``subject``; nothing is read from the registry.

    Raises:
        InvalidImageError: too large, not a manifest or index, a media type other than the
            declared one, a malformed ``subject``.
        CorruptContentError: the bytes are not ``digest``.
    """
    if len(data) > MAX_MANIFEST:
        raise InvalidImageError(f"{what}: manifest of {len(data)} bytes is larger than the {MAX_MANIFEST} accepted")
    if digest is not None:
        if digest.algorithm != "sha256":
            raise CorruptContentError(f"{what}: digest algorithm {digest.algorithm!r} is not supported (sha256 only)")
        actual = Digest.of_bytes(data)
        if actual != digest:
            raise CorruptContentError(f"{what}: the manifest's bytes are {actual}, not {digest}")
    doc = parse_manifest(data, what)
    declared = load_json(data, what).get("mediaType")
    sent = base_media_type(content_type)
    if sent is not None and sent != doc.media_type:
        raise InvalidImageError(f"{what}: sent as {sent!r} but the document is {doc.media_type!r}")
    if declared is None and isinstance(doc, Index) != mt.is_index(sent or doc.media_type):
        raise InvalidImageError(f"{what}: the document's shape does not match {sent!r}")
    subject = doc.obj.get("subject")
    if subject is None:
        return doc, None
    return doc, Descriptor.from_json(subject, f"{what} subject").digest


class _Check:
    """Gathers and checks what a manifest references, against one view and the LFS store."""

    def __init__(self, view: RegistryView, lfs: LfsStore, what: str) -> None:
        self.view = view
        self.lfs = lfs
        self.what = what
        self.docs = _Documents()

    def unknown(self, desc: Descriptor, kind: str) -> BlobNotFound:
        return BlobNotFound(f"{self.what}: {kind} {desc.digest} is not in the registry (push it first)")

    def tree_blob(self, desc: Descriptor, kind: str) -> bytes | None:
        if not self.view.has_blob(desc.digest):
            return None
        data = self.view.blob(desc.digest)  # checked against its digest
        if len(data) != desc.size:
            raise InvalidImageError(f"{self.what}: {kind} {desc.digest} has {len(data)} bytes, the manifest says {desc.size}")
        return data

    def child(self, desc: Descriptor) -> None:
        data = self.tree_blob(desc, "manifest")
        if data is None:
            raise self.unknown(desc, "manifest")
        self.docs.blobs[desc.digest] = data

    def config(self, desc: Descriptor) -> None:
        if desc.size > MAX_MANIFEST:
            raise InvalidImageError(f"{self.what}: config {desc.digest} is too large ({desc.size} bytes)")
        data = self.tree_blob(desc, "config")
        if data is None:
            data = self._from_lfs(desc)
        self.docs.blobs[desc.digest] = data

    def _from_lfs(self, desc: Descriptor) -> bytes:
        """A small blob uploaded into the LFS store (or stored as a layer), read and checked."""
        obj = self._object(desc)
        if obj is None or self.lfs.missing([obj]):
            raise self.unknown(desc, "config")
        self.lfs.fetch([obj])
        with self.lfs.open(obj) as f:
            data = f.read(desc.size + 1)
        if len(data) != desc.size or Digest.of_bytes(data) != desc.digest:
            raise CorruptContentError(f"{self.what}: stored blob {desc.digest} does not match its digest")
        return data

    def _object(self, desc: Descriptor) -> LfsObject | None:
        if self.view.has_layer(desc.digest):
            objects = self.view.layer_objects(desc)
            return objects[0] if len(objects) == 1 else None
        return LfsObject.of(desc.digest, desc.size)

    def layers(self, descs: Iterable[Descriptor]) -> None:
        """Every required layer is in the tree or in LFS; :class:`BlobNotFound` names the first one missing."""
        wanted: dict[Digest, Descriptor] = {}
        for desc in descs:
            if any(word in desc.media_type for word in _OPTIONAL_LAYER):
                continue
            if self.view.has_layer(desc.digest):
                try:
                    self.view.layer_objects(desc)  # the pointer (or chunks) agree with the descriptor
                except CorruptContentError as exc:
                    raise InvalidImageError(f"{self.what}: layer {desc.digest}: {exc}") from None
                continue
            wanted.setdefault(desc.digest, desc)
        objects = {d: LfsObject.of(d, desc.size) for d, desc in wanted.items()}
        missing = {o.oid for o in self.lfs.missing(list(objects.values()))} if objects else set()
        for digest, desc in wanted.items():
            if digest.hex in missing:
                self._upload_tree_blob(desc)
            self.docs.layers[digest] = objects[digest]

    def _upload_tree_blob(self, desc: Descriptor) -> None:
        """A layer that is a git file here (a config used as a layer, say): copied into LFS."""
        data = self.tree_blob(desc, "layer")
        if data is None:
            raise self.unknown(desc, "layer")
        with self.lfs.staging() as (writer, path):
            writer.write(data)
            writer.expect(desc.digest.hex, desc.size)
        self.lfs.upload([(LfsObject.of(desc.digest, desc.size), path)])


def put_manifest(
    publisher: Publisher,
    lfs: LfsStore,
    name: str,
    data: bytes,
    content_type: str | None,
    *,
    tags: Sequence[str] = (),
    digest: Digest | None = None,
) -> PutResult:
    """Store a manifest or index under ``name`` (tagged ``tags``), in one commit; see the module docstring.

    Raises:
        InvalidReference: a bad name or tag.
        InvalidImageError: not a manifest or index of the declared media type, or it
            contradicts the registry (sizes).
        CorruptContentError: ``data`` is not ``digest``.
        BlobNotFound: a referenced blob or child manifest is in neither the tree nor the LFS store.
        ConcurrentUpdateError: the branch kept moving.
    """
    validate_name(name)
    for tag in tags:
        validate_tag(tag)
    what = f"{name}@{digest}" if digest is not None else f"{name}:{tags[0]}" if tags else name
    doc, subject = parse_put(data, content_type, digest, what)
    actual = Digest.of_bytes(data)
    check = _Check(publisher.view(), lfs, what)
    if isinstance(doc, Index):
        for child in doc.manifests:
            check.child(child)
    else:
        check.config(doc.config)
        check.layers(doc.layers)
    check.docs.blobs[actual] = data

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes = check.docs.changes(view)
        for tag in tags:
            changes[layout.tag_path(name, tag)] = layout.tag_content(actual)
        return changes

    targets = ", ".join(f"{name}:{t}" for t in tags) or f"{name}@{actual}"
    body = "\n".join(f"{name}:{t} {actual}" for t in tags) or f"{name} {actual}"
    commit = publisher.publish(build, f"push {targets}\n\n{body}\n")
    return PutResult(actual, doc.media_type, subject, commit, tuple(tags))


def _needed_by_others(view: RegistryView, path: str, skip: Callable[[str, str], bool]) -> str | None:
    """``name:tag`` of a tagged image that needs ``path`` (``skip`` leaves tags out), or ``None``."""
    closure = Closure(view.label)
    for name in view.names():
        for tag, digest in view.tags(name):
            if skip(name, tag):
                continue
            with contextlib.suppress(LfsregError):  # a damaged image cannot be broken further
                if path in closure.of(digest, view.snapshot.read).paths():
                    return f"{name}:{tag}"
    return None


def delete_tag(publisher: Publisher, name: str, tag: str) -> str | None:
    """Remove a tag in one commit; :class:`ImageNotFound` if it does not exist."""
    validate_name(name)
    validate_tag(tag)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        path = layout.tag_path(name, tag)
        if not view.snapshot.exists(path):
            raise ImageNotFound(f"{view.label}: no tag {name}:{tag}")
        return {path: None}

    return publisher.publish(build, f"untag {name}:{tag}\n")


def delete_manifest(publisher: Publisher, name: str, digest: Digest) -> str | None:
    """Delete manifest ``digest`` from ``name`` in one commit.

    The name's tags that point at it go; the manifest goes too unless a tag of another name
    still needs it (then only this name loses it). :class:`ImageNotFound` if ``name`` has no
    such tag and the registry no such manifest.
    """
    validate_name(name)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {layout.tag_path(name, t): None for t, d in view.tags(name) if d == digest}
        path = layout.blob_path(digest)
        data = view.snapshot.read(path)
        is_manifest = False
        if data is not None:
            with contextlib.suppress(InvalidImageError):
                parse_manifest(data, str(digest))
                is_manifest = True
        if not changes and not is_manifest:
            raise ImageNotFound(f"{view.label}: no manifest {digest} in {name}")
        if is_manifest and _needed_by_others(view, path, lambda n, t: n == name and layout.tag_path(n, t) in changes) is None:
            changes[path] = None
        return changes

    return publisher.publish(build, f"delete {name}@{digest}\n")


def delete_blob(publisher: Publisher, name: str, digest: Digest) -> str | None:
    """Remove a blob (config or layer) from the tree in one commit, as a registry unlinks it.

    Like the distribution registry, a blob that an image of ``name`` still uses may be deleted
    (that image is then broken, until history restores it); one that an image of another name
    uses is refused (:class:`PermissionDeniedError`). :class:`BlobNotFound` if the tree lacks it.
    """
    validate_name(name)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        blob = layout.blob_path(digest)
        if view.snapshot.exists(blob):
            changes[blob] = None
        layer = layout.layer_path(digest)
        if view.snapshot.read(layer) is not None:
            changes[layer] = None
        else:
            for entry, is_dir, _ in view.snapshot.listdir(layer):
                if not is_dir:
                    changes[f"{layer}/{entry}"] = None
        if not changes:
            raise BlobNotFound(f"{view.label}: no blob {digest}")
        for path in changes:
            user = _needed_by_others(view, path, lambda n, _t: n == name)
            if user is not None:
                raise PermissionDeniedError(f"{view.label}: blob {digest} is used by {user}; delete that image first")
        return changes

    return publisher.publish(build, f"delete blob {digest} ({name})\n")
