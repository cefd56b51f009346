"""Getting a local repository's space back: what every ref reaches is repacked, the rest deleted.

An object no ref reaches is kept while it is recent (its loose file or its pack modified after
``cutoff``), as ``git gc`` keeps what is younger than ``gc.pruneExpire``: a push running now may
be about to reference it (a writer that finds an object already stored refreshes its file's
time, :meth:`lfsreg.git.objects.ObjectFiles.__contains__`). Packing runs under the lock every
packing and fetching process takes (``objects/pack``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from dulwich.gc import find_reachable_objects
from dulwich.objects import Commit

from .bulk import directory_bytes
from .store import GitStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """Objects and bytes of ``objects/`` before and after a collection."""

    objects_before: int
    objects_after: int
    bytes_before: int
    bytes_after: int


def remove_empty_dirs(root: str, depth: int) -> None:
    """Remove the empty directories ``depth`` levels below ``root`` whose names are hex (a fan-out).

    A writer that loses its directory to this creates it again (:meth:`ObjectFiles.add`,
    :func:`lfsreg.staging.place`).
    """

    def walk(path: str, level: int) -> None:
        try:
            names = os.listdir(path)
        except OSError:
            return
        for name in names:
            sub = os.path.join(path, name)
            if len(name) != 2 or not all(c in "0123456789abcdef" for c in name) or not os.path.isdir(sub):
                continue
            if level < depth:
                walk(sub, level + 1)
            with contextlib.suppress(OSError):
                os.rmdir(sub)  # fails unless empty

    walk(root, 1)


def ref_tips(store: GitStore) -> list[str]:
    """The commit of every ref (branches, tags, remotes, ``HEAD``) that points at one."""
    refs = store.repo.refs
    out = []
    for name in refs.allkeys():
        try:
            sha = refs[name]
        except KeyError:
            continue
        try:
            if isinstance(store.objects.get(bytes(sha)), Commit):
                out.append(bytes(sha).decode())
        except KeyError:
            continue
    return sorted(set(out))


def reachable_commits(store: GitStore, tips: list[str]) -> Iterator[tuple[str, bytes]]:
    """``(commit id, root tree id)`` of every commit reachable from ``tips`` (all parents), each once."""
    seen: set[str] = set()
    stack = list(tips)
    shallow = store.shallow()
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        try:
            obj = store.objects.get(sha.encode())
        except KeyError:
            continue  # beyond a shallow boundary
        if not isinstance(obj, Commit):
            continue
        yield sha, bytes(obj.tree)
        if sha.encode() not in shallow:
            stack.extend(p.decode() for p in obj.parents)


def collect(store: GitStore, cutoff: float, *, dry_run: bool = False) -> Collected:
    """Repack the objects some ref reaches, plus unreachable ones changed after ``cutoff``; delete the rest."""
    objects = store.repo.object_store
    path = store.objects.path
    before_bytes = directory_bytes(path)
    with store.objects.pack_writes():
        every = set(objects)
        reachable = find_reachable_objects(objects, store.repo.refs)
        doomed = set()
        for sha in every - reachable:
            try:
                if objects.get_object_mtime(sha) < cutoff:
                    doomed.add(sha)
            except KeyError:
                continue
        if not dry_run:
            objects.repack(exclude=doomed)
            store.objects.sweep()
            remove_empty_dirs(path, depth=1)  # the loose objects' fan-out, as `git prune` does
    after = len(every) - len(doomed)
    log.debug("%s: %d object(s) unreachable and old, %d kept", path, len(doomed), after)
    return Collected(len(every), after, before_bytes, directory_bytes(path) if not dry_run else before_bytes)
