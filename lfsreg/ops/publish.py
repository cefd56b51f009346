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
push is. A manifest with a ``subject`` also gets its ``_referrers`` record under the name, in
the same commit (docs/format.md). Bad input raises before anything is written. A blob larger
than the registry's ``limits.object`` is stored as chunks when it is uploaded
(:func:`store_upload`). Deletes are in :mod:`lfsreg.ops.delete`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, CorruptContentError, InvalidImageError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..lfs.store import LfsStore
from ..manifest import Descriptor, Index, Manifest, dump_json, load_json, parse_manifest
from ..reference import validate_name, validate_tag
from ..registry import layout
from ..registry.config import Limits
from ..registry.transaction import Publisher, subject_refs
from ..registry.view import RegistryView
from ..staging import forget
from .chunking import check_limit, split_reader
from .limits import check_storage, estimate
from .usage import billed_objects

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
    stored: tuple[Digest, ...] = ()  # the blobs and layers the commit names (it names them from now on)


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
                out[view.layout.blob_path(digest)] = data
        for digest, obj in self.layers.items():
            if not view.has_layer(digest):  # a pointer, or chunks (a directory): either holds the layer
                out[view.layout.layer_path(digest)] = lfs_pointer.encode(obj)
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
    """Gathers what a manifest references: from the tree first (under the guard), then from the LFS store."""

    def __init__(self, lfs: LfsStore, what: str) -> None:
        self.lfs = lfs
        self.what = what
        self.docs = _Documents()
        self.config: Descriptor | None = None  # a config the tree lacks: read from LFS
        self.wanted: dict[Digest, Descriptor] = {}  # layers the tree lacks: in LFS, or uploaded there
        self.tree_bytes: dict[Digest, bytes] = {}  # ... from a git file of the tree (a config used as a layer)
        self.small: dict[Digest, Descriptor] = {}  # layers stored as git files that the tree lacks: read from LFS

    def unknown(self, desc: Descriptor, kind: str) -> BlobNotFound:
        return BlobNotFound(f"{self.what}: {kind} {desc.digest} is not in the registry (push it first)")

    def tree_blob(self, view: RegistryView, desc: Descriptor, kind: str) -> bytes | None:
        if not view.has_blob(desc.digest):
            return None
        data = view.blob(desc.digest)  # checked against its digest
        if len(data) != desc.size:
            raise InvalidImageError(f"{self.what}: {kind} {desc.digest} has {len(data)} bytes, the manifest says {desc.size}")
        return data

    def gather(self, view: RegistryView, doc: Manifest | Index) -> None:
        """Read what the tree holds of ``doc``'s references (call under the git guard)."""
        if isinstance(doc, Index):
            for child in doc.manifests:
                data = self.tree_blob(view, child, "manifest")
                if data is None:
                    raise self.unknown(child, "manifest")
                self.docs.blobs[child.digest] = data
            return
        if doc.config.size > MAX_MANIFEST:
            raise InvalidImageError(f"{self.what}: config {doc.config.digest} is too large ({doc.config.size} bytes)")
        data = self.tree_blob(view, doc.config, "config")
        if data is not None:
            self.docs.blobs[doc.config.digest] = data
        else:
            self.config = doc.config
            if view.has_layer(doc.config.digest):  # a config stored as a layer: its one object
                objects = self._objects(view, doc.config)
                if len(objects) != 1:
                    raise self.unknown(doc.config, "config")
        for desc in doc.layers:
            if any(word in desc.media_type for word in _OPTIONAL_LAYER):
                continue
            if mt.stored_in_git(desc.media_type):  # a signature's payload: a git file (docs/format.md)
                if desc.size > MAX_MANIFEST:
                    raise InvalidImageError(f"{self.what}: payload {desc.digest} is too large ({desc.size} bytes)")
                data = self.tree_blob(view, desc, "payload")
                if data is not None:
                    self.docs.blobs[desc.digest] = data
                else:
                    self.small[desc.digest] = desc  # uploaded into LFS: copied into blobs/
                continue
            if view.has_layer(desc.digest):
                self._objects(view, desc)  # the pointer (or chunks) agree with the descriptor
                continue
            self.wanted.setdefault(desc.digest, desc)
            data = self.tree_blob(view, desc, "layer")
            if data is not None:
                self.tree_bytes[desc.digest] = data

    def _objects(self, view: RegistryView, desc: Descriptor) -> list[LfsObject]:
        try:
            return view.layer_objects(desc)
        except CorruptContentError as exc:
            raise InvalidImageError(f"{self.what}: blob {desc.digest}: {exc}") from None

    def fetch(self) -> None:
        """Check the LFS store holds what the tree lacks (no guard needed: no git objects are read)."""
        objects = {d: LfsObject.of(d, desc.size) for d, desc in self.wanted.items()}
        if self.config is not None:
            objects[self.config.digest] = LfsObject.of(self.config.digest, self.config.size)
        objects.update({d: LfsObject.of(d, desc.size) for d, desc in self.small.items()})
        missing = {o.oid for o in self.lfs.missing(list(objects.values()))} if objects else set()
        for digest, desc in self.wanted.items():
            if digest.hex in missing:
                data = self.tree_bytes.get(digest)
                if data is None:
                    raise self.unknown(desc, "layer")
                self._upload(desc, data)
            self.docs.layers[digest] = objects[digest]
        for digest, desc in self.small.items():
            if digest.hex in missing:
                raise self.unknown(desc, "payload")
            self.docs.blobs[digest] = self._read(objects[digest])
        if self.config is not None:
            if self.config.digest.hex in missing:
                raise self.unknown(self.config, "config")
            self.docs.blobs[self.config.digest] = self._read(objects[self.config.digest])

    def _read(self, obj: LfsObject) -> bytes:
        """A small blob from the LFS store, checked (every byte from storage is hostile until verified)."""
        self.lfs.fetch([obj])
        with self.lfs.open(obj) as f:
            data = f.read(obj.size + 1)
        if len(data) != obj.size or Digest.sha256(obj.oid) != Digest.of_bytes(data):
            raise CorruptContentError(f"{self.what}: stored blob sha256:{obj.oid} does not match its digest")
        return data

    def _upload(self, desc: Descriptor, data: bytes) -> None:
        """A layer that is a git file here (a config used as a layer, say): copied into LFS."""
        with self.lfs.staging() as (writer, path):
            writer.write(data)
            writer.expect(desc.digest.hex, desc.size)
        self.lfs.upload([(LfsObject.of(desc.digest, desc.size), path)])


def referrer_record(doc: Manifest | Index, digest: Digest) -> bytes:
    """The ``_referrers`` record of a manifest with a subject: its descriptor as the referrers API lists it."""
    obj = doc.obj
    artifact = obj.get("artifactType")
    if not isinstance(artifact, str) or not artifact:
        artifact = doc.config.media_type if isinstance(doc, Manifest) else None
    record: dict[str, object] = {"mediaType": doc.media_type, "digest": str(digest), "size": len(doc.data)}
    if artifact:
        record["artifactType"] = artifact
    if isinstance(obj.get("annotations"), dict) and obj["annotations"]:
        record["annotations"] = obj["annotations"]
    return dump_json(record)


def put_manifest(
    publisher: Publisher,
    lfs: LfsStore,
    name: str,
    data: bytes,
    content_type: str | None,
    *,
    tags: Sequence[str] = (),
    digest: Digest | None = None,
    guard: AbstractContextManager[object] | None = None,
    before_commit: Callable[[list[LfsObject]], None] | None = None,
) -> PutResult:
    """Store a manifest or index under ``name`` (tagged ``tags``), in one commit; see the module docstring.

    ``guard`` is held while git objects are read or written (a server's lock: its git object
    store is not shared between threads), never while the LFS store is asked.
    ``before_commit`` is called with the LFS objects the commit will newly name (layers the
    tree lacks) once they are found; whatever it raises stops the put before anything is
    written (a server's ``limits.storage`` check).

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
    check = _Check(lfs, what)
    with guard or nullcontext():
        check.gather(publisher.view(), doc)
    check.fetch()
    if before_commit is not None:
        before_commit(list(check.docs.layers.values()))
    check.docs.blobs[actual] = data
    record = referrer_record(doc, actual) if subject is not None else None

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes = check.docs.changes(view)
        for tag in tags:
            changes[view.layout.tag_path(name, tag)] = layout.tag_content(actual)
        if subject is not None and record is not None:
            changes[view.layout.referrer_path(name, subject, actual)] = record
        return changes

    targets = subject_refs([f"{name}:{t}" for t in tags]) or f"{name}@{actual}"
    body = "\n".join(f"{name}:{t} {actual}" for t in tags) or f"{name} {actual}"
    with guard or nullcontext():
        commit = publisher.publish(build, f"push {targets}\n\n{body}\n")
    return PutResult(actual, doc.media_type, subject, commit, tuple(tags), (*check.docs.blobs, *check.docs.layers))


def check_upload_storage(
    publisher: Publisher,
    view: RegistryView,
    objects: Sequence[LfsObject],
    storage: int | None,
    memo_path: str | None,
    *,
    outcome: str = "nothing was uploaded",
) -> None:
    """:class:`LimitExceededError` if history naming ``objects`` would take the registry over ``limits.storage``.

    Checked per blob before it is uploaded, and for all of a manifest's new layers before its
    commit (blobs uploaded but not yet named by a commit are not billed, so blobs that each
    fit may not fit together), as ``lfsreg push`` checks a push: an object that history
    references already costs nothing. Reads the history (memoised at ``memo_path``).
    ``outcome`` ends the error message (what was left undone).
    """
    if storage is None or not objects:
        return
    if view.snapshot.commit is not None and publisher.backend.git.partial():
        publisher.backend.complete(view.snapshot.commit)  # a mirror fetched in part: the whole history first, as before
    billed, complete = billed_objects(publisher.backend.git, view.snapshot.commit, publisher.label, memo_path)
    sizes = {obj.oid: obj.size for obj in objects}
    check_storage(estimate(sizes, sizes, billed, complete, Limits(storage=storage)), publisher.label, outcome=outcome)


def store_upload(
    publisher: Publisher,
    lfs: LfsStore,
    obj: LfsObject,
    path: str,
    limit: int | None,
    *,
    guard: AbstractContextManager[object] | None = None,
) -> bool:
    """Store a verified staged blob in the LFS store; ``True`` if stored whole, ``False`` if as chunks.

    A blob larger than ``limit``, the registry's ``limits.object`` (docs/format.md, "Chunked layers"), is
    cut into chunks, which are uploaded, and their pointers are committed at once (one commit,
    a version 1 registry becomes 2): a host refuses objects over its limit, and the chunks' ids
    are known only here, so the commit is what lets any process (another ``serve`` behind the
    same address) find the blob. The staged file is consumed either way.
    """
    limit = check_limit(limit)
    if limit is None or obj.size <= limit:
        lfs.upload([(obj, path)])
        return True
    digest = obj.digest
    with open(path, "rb") as src:
        parts = split_reader(src, obj.size, limit, lfs, f"uploaded blob {digest}")
    forget(path, remove=True)
    try:
        lfs.upload(parts)
    except BaseException:
        for _, part in parts:
            forget(part, remove=True)
        raise
    pointers = [lfs_pointer.encode(chunk) for chunk, _ in parts]

    def build(view: RegistryView) -> dict[str, bytes | None]:
        if view.has_layer(digest):
            return {}  # stored already (by a concurrent upload), whole or in chunks
        lay = view.layout
        return {**{lay.chunk_path(digest, i): p for i, p in enumerate(pointers)}, **lay.chunked_marker()}

    with guard or nullcontext():
        publisher.publish(build, f"store blob {digest} in {len(parts)} chunks\n")
    return False
