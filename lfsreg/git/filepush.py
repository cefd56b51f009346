"""A push into a ``file://`` remote: a repository on this machine, written as a local registry is.

dulwich's local client would write the remote's refs and objects in this process without
git's lock protocol; lfsreg copies the missing objects itself and moves the branch with
:meth:`lfsreg.git.store.GitStore.compare_and_swap`, so a full disk or a kill leaves no lock and
no partial file there, only unreferenced whole objects.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from dulwich.objects import Commit, Tree

from ..errors import NotARegistryError, NotFoundError, RepositoryNotFound
from .store import GitStore

_GITLINK = 0o160000  # a submodule's commit: not an object of this repository

__all__ = ["local_git_dir", "push_to_directory"]


def local_git_dir(url: str) -> str | None:
    """The git directory of a ``file://`` URL (``None`` for any other scheme)."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    return path if os.path.isfile(os.path.join(path, "HEAD")) else os.path.join(path, ".git")


def push_to_directory(mirror: GitStore, git_dir: str, branch: bytes, old: str | None, new: str, label: str) -> bool:
    """Move ``branch`` of the repository at ``git_dir`` from ``old`` to ``new``; ``False`` if it had moved.

    The commit's missing objects are copied from ``mirror`` as loose objects (temporary file,
    rename) before the compare-and-swap under git's lock.

    Raises:
        RepositoryNotFound: ``git_dir`` is not a repository.
    """
    try:
        target = GitStore.open(git_dir)
    except (NotFoundError, NotARegistryError):
        raise RepositoryNotFound(f"{label}: repository not found", hint="check the URL") from None
    try:
        target.branch = branch
        _copy_objects(mirror, target, new.encode())
        return target.compare_and_swap(old, new)
    finally:
        target.close()


def _copy_objects(source: GitStore, target: GitStore, commit: bytes) -> None:
    """Copy into ``target`` every object reachable from ``commit`` that it lacks.

    The walk stops at objects ``target`` has: a repository that holds a tree or commit holds
    everything under it.
    """
    objects = source.objects
    pending = [commit]
    while pending:
        sha = pending.pop()
        if sha in target:
            continue
        obj = objects.get(sha)
        if isinstance(obj, Commit):
            pending.extend([bytes(obj.tree), *map(bytes, obj.parents)])
        elif isinstance(obj, Tree):
            pending.extend(bytes(entry.sha) for entry in obj.iteritems() if entry.mode != _GITLINK)
        target.objects.add(obj)
