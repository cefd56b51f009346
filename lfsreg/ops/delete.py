"""Deletes through the distribution API, each one commit: a tag, a manifest, a blob.

A tag goes alone. A manifest by digest takes the name's tags that point at it and its
``_referrers`` record with it, and leaves ``blobs/`` only when no other name needs it (a tag
whose image contains it, or a referrer record naming it). A blob leaves the tree (its git file
or its pointers) unless an image of another name uses it. History keeps every deleted
document: ``lfsreg rollback`` or ``git revert`` restore them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from ..digest import Digest
from ..errors import BlobNotFound, ImageNotFound, InvalidImageError, LfsregError, PermissionDeniedError
from ..manifest import Descriptor, Index, Manifest, parse_manifest
from ..reference import validate_name, validate_tag
from ..registry.closure import Closure
from ..registry.transaction import Publisher
from ..registry.view import RegistryView


def _needed_by_others(view: RegistryView, path: str, skip: Callable[[str, str], bool], referrer_of: str | None = None) -> str | None:
    """``name:tag`` of a tagged image that needs ``path`` (``skip`` leaves tags out), or ``None``.

    ``referrer_of``: the name whose ``_referrers`` records are not counted; those of every other
    name keep the manifest at ``path`` too (a referrer is untagged: its record is what names it).
    """
    closure = Closure(view.label, view.layout)
    for name in view.names():
        if referrer_of is not None and name != referrer_of and _has_referrer_record(view, name, path.rsplit("/", 1)[-1]):
            return f"{name} (a referrer)"
        for tag, digest in view.tags(name):
            if skip(name, tag):
                continue
            with contextlib.suppress(LfsregError):  # a damaged image cannot be broken further
                if path in closure.of(digest, view.snapshot.read).paths():
                    return f"{name}:{tag}"
    return None


def _has_referrer_record(view: RegistryView, name: str, hex_digest: str) -> bool:
    base = view.layout.referrers_base(name)
    return any(view.snapshot.exists(f"{base}/{subject}/{hex_digest}") for subject, is_dir, _ in view.snapshot.listdir(base) if is_dir)


def delete_tag(publisher: Publisher, name: str, tag: str, *, guard: AbstractContextManager[object] | None = None) -> str | None:
    """Remove a tag in one commit; :class:`ImageNotFound` if it does not exist."""
    validate_name(name)
    validate_tag(tag)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        path = view.layout.tag_path(name, tag)
        if not view.snapshot.exists(path):
            raise ImageNotFound(f"{view.label}: no tag {name}:{tag}")
        return {path: None}

    with guard or nullcontext():
        return publisher.publish(build, f"untag {name}:{tag}\n")


def delete_manifest(publisher: Publisher, name: str, digest: Digest, *, guard: AbstractContextManager[object] | None = None) -> str | None:
    """Delete manifest ``digest`` from ``name`` in one commit.

    The name's tags that point at it go, and its ``_referrers`` record if it has a subject; the
    manifest goes too unless another name still needs it (a tag, or a referrer record; then
    only this name loses it). :class:`ImageNotFound` if ``name`` has no such tag and the
    registry no such manifest.
    """
    validate_name(name)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {view.layout.tag_path(name, t): None for t, d in view.tags(name) if d == digest}
        path = view.layout.blob_path(digest)
        data = view.snapshot.read(path)
        doc: Manifest | Index | None = None
        if data is not None:
            with contextlib.suppress(InvalidImageError):
                doc = parse_manifest(data, str(digest))
        if not changes and doc is None:
            raise ImageNotFound(f"{view.label}: no manifest {digest} in {name}")
        if doc is None:
            return changes
        subject = doc.obj.get("subject")
        with contextlib.suppress(InvalidImageError):
            record = view.layout.referrer_path(name, Descriptor.from_json(subject, str(digest)).digest, digest)
            if view.snapshot.exists(record):
                changes[record] = None
        if _needed_by_others(view, path, lambda n, t: n == name and view.layout.tag_path(n, t) in changes, name) is None:
            changes[path] = None
        return changes

    with guard or nullcontext():
        return publisher.publish(build, f"delete {name}@{digest}\n")


def delete_blob(publisher: Publisher, name: str, digest: Digest, *, guard: AbstractContextManager[object] | None = None) -> str | None:
    """Remove a blob (config or layer) from the tree in one commit, as a registry unlinks it.

    Like the distribution registry, a blob that an image of ``name`` still uses may be deleted
    (that image is then broken, until history restores it); one that an image of another name
    uses is refused (:class:`PermissionDeniedError`). :class:`BlobNotFound` if the tree lacks it.
    """
    validate_name(name)

    def build(view: RegistryView) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        blob = view.layout.blob_path(digest)
        if view.snapshot.exists(blob):
            changes[blob] = None
        layer = view.layout.layer_path(digest)
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

    with guard or nullcontext():
        return publisher.publish(build, f"delete blob {digest} ({name})\n")
