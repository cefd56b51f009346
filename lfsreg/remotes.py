"""Where a registry lives: a local bare repository, or a remote reached by URL.

Each location yields the same two things, a :class:`Publisher` (the git side) and an
:class:`LfsStore` (the layers), so push and pull never know which kind they talk to.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import UsageError
from .git.remote import GitRemote
from .git.store import GitStore
from .lfs.cache import ObjectCache, cache_root
from .lfs.filestore import FileRemoteLfsStore
from .lfs.store import LfsStore, LocalLfsStore
from .registry.transaction import Publisher


@dataclass
class LocalBackend:
    """A bare repository on this machine: commits go straight into it."""

    git: GitStore
    label: str

    def tip(self) -> str | None:
        """The branch's commit."""
        return self.git.head()

    def swap(self, old: str | None, new: str) -> bool:
        """Compare-and-swap under git's lock protocol."""
        return self.git.compare_and_swap(old, new)


@dataclass
class RemoteBackend:
    """A remote repository: commits are built in a mirror and pushed with compare-and-swap."""

    remote: GitRemote
    label: str

    @property
    def git(self) -> GitStore:
        """The local mirror."""
        return self.remote.mirror

    def tip(self) -> str | None:
        """Fetch and return the remote's tip."""
        return self.remote.fetch_tip()

    def swap(self, old: str | None, new: str) -> bool:
        """Push ``new`` if the remote is still at ``old``."""
        return self.remote.push(old, new)


def _mirror_dir(url: str) -> str:
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return os.path.join(cache_root(), "mirrors", f"{key}.git")


def open_location(location: str, *, create: bool) -> tuple[Publisher, LfsStore]:
    """The publisher and LFS store for ``location`` (a path, or a ``file://`` URL).

    ``create`` makes a missing or empty local directory a new repository (the first push).
    """
    if "://" not in location:
        if create and (not os.path.exists(location) or (os.path.isdir(location) and not os.listdir(location))):
            git = GitStore.init(location)
        else:
            git = GitStore.open(location)
        return Publisher(LocalBackend(git, location)), LocalLfsStore(location)
    parts = urlsplit(location)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if create and not os.path.exists(path):
            GitStore.init(path)
        GitStore.open(path)  # a clear error for a missing or non-git directory
        remote = GitRemote(location, _mirror_dir(location), location)
        cache = ObjectCache(os.path.join(cache_root(), "lfs"))
        return Publisher(RemoteBackend(remote, location)), FileRemoteLfsStore(path, cache, location)
    raise UsageError(f"{location}: {parts.scheme}:// registries are not supported yet; use a path or a file:// URL")
