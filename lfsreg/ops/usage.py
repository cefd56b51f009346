"""``du``: what a registry's images take, from git alone (pointer and descriptor sizes).

Per tag: the bytes of the LFS objects (layers) its image references (``size``), the part no
other live tag references (``unique``: what untagging it alone would free once collected)
and the rest (``shared``). Per image name the same, against the other names. For the
registry: the LFS bytes live tags reference; the LFS bytes referenced anywhere in the
history, which is what a git host bills (an object stays billed while any commit references
it); and the git metadata bytes (the repository's object files). Nothing is downloaded.

Manifests, indexes and configs are plain git blobs: they count in the git metadata bytes,
not in the LFS numbers.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..digest import Digest
from ..git.bulk import directory_bytes
from ..git.store import GitStore
from ..registry.location import Backend
from ..registry.view import RegistryView
from .walk import RegistryWalk, matches, paused_gc


@dataclass(frozen=True, slots=True)
class TagUsage:
    """One live tag: the LFS bytes its image references, only it references, and shares."""

    name: str
    tag: str
    digest: Digest
    size: int
    unique: int
    shared: int
    objects: int


@dataclass(frozen=True, slots=True)
class ImageUsage:
    """One image name over all its tags: the same numbers, against the other names."""

    name: str
    tags: int
    size: int
    unique: int
    shared: int
    objects: int


@dataclass(frozen=True, slots=True)
class UnreadableTag:
    """A tag whose tag file or manifest could not be read; it counts in no number."""

    name: str
    tag: str | None
    error: str


@dataclass(slots=True)
class RegistryUsage:
    """What ``du`` reports. Byte counts are LFS object sizes unless named ``git``.

    ``history_complete`` is ``False`` when the history walked was cut short (a shallow copy):
    ``history_bytes`` is then a lower bound.
    """

    tags: list[TagUsage] = field(default_factory=list)
    images: list[ImageUsage] = field(default_factory=list)
    live_bytes: int = 0
    live_objects: int = 0
    history_bytes: int = 0
    history_objects: int = 0
    git_bytes: int = 0
    commits: int = 0
    history_complete: bool = True
    unreadable: list[UnreadableTag] = field(default_factory=list)


def disk_usage(
    git: GitStore,
    commit: str | None,
    label: str,
    *,
    image_globs: Sequence[str] = (),
    tag_globs: Sequence[str] = (),
    history_complete: bool = True,
    git_bytes: int = 0,
    memo_path: str | None = None,
) -> RegistryUsage:
    """``du`` of the registry at ``commit`` in ``git``; rows filtered by the globs.

    ``unique`` and ``shared`` are always computed against every live tag, filtered or not.
    """
    walk = RegistryWalk(git, label, memo_path)
    tags, bad = walk.live(commit)
    # Plain dictionaries and loops: 30,000 tags make every call per tag count.
    by_tag: dict[str, int] = {}  # oid -> live tags referencing it
    by_name: dict[str, set[str]] = {}
    live: dict[str, int] = {}
    for (name, _), (_, objs) in tags.items():
        live.update(objs)  # tags that name one image share its dict
        for oid in objs:
            by_tag[oid] = by_tag.get(oid, 0) + 1
        oids = by_name.get(name)
        if oids is None:
            by_name[name] = set(objs)
        else:
            oids.update(objs)
    names_of: Counter[str] = Counter()
    for oids in by_name.values():
        names_of.update(oids)
    out = RegistryUsage(unreadable=[UnreadableTag(*b) for b in bad], git_bytes=git_bytes)
    out.live_bytes, out.live_objects = sum(live.values()), len(live)
    counts: Counter[str] = Counter(name for name, _ in tags)
    sizes: dict[int, tuple[int, int]] = {}  # by the id of an image's dict, shared by its tags
    for (name, tag), (digest, objs) in sorted(tags.items()):
        if (image_globs and not matches(name, image_globs)) or (tag_globs and not matches(tag, tag_globs)):
            continue
        known = sizes.get(id(objs))
        if known is None:
            known = sizes[id(objs)] = (sum(objs.values()), sum(s for o, s in objs.items() if by_tag[o] == 1))
        size, unique = known
        out.tags.append(TagUsage(name, tag, digest, size, unique, size - unique, len(objs)))
    shown = {t.name for t in out.tags}
    for name, oids in sorted(by_name.items()):
        if not matches(name, image_globs) or (tag_globs and name not in shown):
            continue
        size = sum(live[o] for o in oids)
        unique = sum(live[o] for o in oids if names_of[o] == 1)
        out.images.append(ImageUsage(name, counts[name], size, unique, size - unique, len(oids)))
    history, out.commits, complete = walk.history(commit, live)
    walk.save()
    out.history_complete = complete and history_complete
    out.history_bytes, out.history_objects = sum(history.values()), len(history)
    return out


def memo_file(cache_dir: str | None, git: GitStore) -> str | None:
    """The base name of the walk's memo files of the repository ``git`` in lfsreg's cache (``None``: no cache)."""
    if not cache_dir:
        return None
    key = hashlib.sha256(os.path.abspath(git.path).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, "du", key)


def registry_usage(
    backend: Backend, label: str, cache_dir: str | None, *, image_globs: Sequence[str] = (), tag_globs: Sequence[str] = ()
) -> RegistryUsage:
    """``du`` of the registry at ``backend``'s tip, with all of its history (a remote's is fetched first)."""
    tip = backend.history_tip()
    RegistryView(backend.git.snapshot(tip), label)  # refuses a repository that is not a registry
    git = backend.git
    with paused_gc():
        return disk_usage(
            git,
            tip,
            label,
            image_globs=image_globs,
            tag_globs=tag_globs,
            git_bytes=directory_bytes(git.objects.path),
            memo_path=memo_file(cache_dir, git),
        )


def billed_objects(git: GitStore, tip: str | None, label: str, memo_path: str | None = None) -> tuple[dict[str, int], bool]:
    """The LFS objects (oid -> size) history references up to ``tip`` (what the host bills), and whether it was all read.

    A shallow mirror holds part of the history: the objects are then at least these.
    """
    walk = RegistryWalk(git, label, memo_path)
    sizes, _, complete = walk.history(tip)
    walk.save()
    return sizes, complete


__all__ = ["ImageUsage", "RegistryUsage", "TagUsage", "UnreadableTag", "billed_objects", "disk_usage", "memo_file", "registry_usage"]
