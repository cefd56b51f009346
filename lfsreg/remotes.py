"""Where a registry lives: a local bare repository, or a remote reached by URL.

Each location yields the same two things, a :class:`Publisher` (the git side) and an
:class:`LfsStore` (the layers), so push and pull never know which kind they talk to.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from .credentials import Credential, candidates, origin, stored_for, strip_userinfo
from .errors import UsageError
from .git.remote import GitRemote
from .git.store import GitStore
from .lfs.cache import ObjectCache, cache_root
from .lfs.filestore import FileRemoteLfsStore
from .lfs.retry import RetryPolicy
from .lfs.store import LfsStore, LocalLfsStore
from .registry.transaction import Publisher
from .ssh.settings import SshSettings
from .ssh.url import is_ssh_location, parse_ssh_url


@dataclass
class LocalBackend:
    """A bare repository on this machine: commits go straight into it."""

    git: GitStore
    label: str

    def tip(self) -> str | None:
        """The branch's commit."""
        return self.git.head()

    def close(self) -> None:
        """Release the repository's files."""
        self.git.close()

    def swap(self, old: str | None, new: str) -> bool:
        """Compare-and-swap under git's lock protocol; pack loose objects now and then."""
        if not self.git.compare_and_swap(old, new):
            return False
        self.git.maybe_pack()
        return True


@dataclass
class RemoteBackend:
    """A remote repository: commits are built in a mirror and pushed with compare-and-swap."""

    remote: GitRemote
    label: str
    on_close: Callable[[], None] | None = None  # e.g. an SSH connection shared with the LFS store

    @property
    def git(self) -> GitStore:
        """The local mirror."""
        return self.remote.mirror

    def close(self) -> None:
        """Release the mirror's files and the connection."""
        self.remote.mirror.close()
        if self.on_close is not None:
            self.on_close()

    def tip(self) -> str | None:
        """Fetch and return the remote's tip."""
        return self.remote.fetch_tip()

    def swap(self, old: str | None, new: str) -> bool:
        """Push ``new`` if the remote is still at ``old``."""
        return self.remote.push(old, new)


def _mirror_dir(url: str) -> str:
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return os.path.join(cache_root(), "mirrors", f"{key}.git")


@dataclass(frozen=True)
class RemoteOptions:
    """Settings for remote registries; every field also has an environment variable.

    Attributes:
        lfs_url: LFS endpoint override (``LFSREG_LFS_URL``); else ``lfs.url`` in the registry's
            ``.lfsconfig``; else ``<remote>.git/info/lfs``.
        ca_bundle: CA certificates for TLS (``LFSREG_CA_BUNDLE``).
        verify_tls: ``False`` only for testing against self-signed servers.
        transfers: concurrent LFS transfers (git-lfs's default is 8).
        policy: retry policy of the LFS transfer queue.
        ssh: keys and host-key checking for SSH remotes (``LFSREG_SSH_*`` fill what is unset).
    """

    lfs_url: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True
    transfers: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    ssh: SshSettings = field(default_factory=SshSettings)


class LazyLfsStore:
    """An LFS store created on first use (its endpoint may come from the fetched ``.lfsconfig``)."""

    def __init__(self, factory: Callable[[], LfsStore], label: str) -> None:
        self._factory = factory
        self._store: LfsStore | None = None
        self.label = label

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            self._store = self._factory()
            self.label = self._store.label
        return getattr(self._store, name)


def content_endpoint(content_url: str, home: str, home_credentials: Sequence[Credential], label: str) -> list[Credential]:
    """The credentials for an LFS URL that the registry's own ``.lfsconfig`` names.

    ``home`` is the https(s) URL of the host the user named. On that host the content URL gets
    ``home_credentials``; elsewhere only what is stored for exactly its host, and never over
    plain http (:class:`UsageError`: the user must name such an endpoint to trust it).
    """
    check_url(content_url)
    if origin(content_url) == origin(home):
        return list(home_credentials)
    shown = strip_userinfo(content_url)
    if urlsplit(content_url).scheme != "https":
        raise UsageError(
            f"{label}: the registry's .lfsconfig names {shown}, plain http to another host than the registry's; nothing was sent there",
            hint="to use that LFS server anyway, name it yourself with --lfs-url URL (or LFSREG_LFS_URL)",
        )
    return list(stored_for(content_url))


def _http(location: str, options: RemoteOptions) -> tuple[Publisher, LfsStore]:
    from .lfs.batch import endpoint_for  # requests is imported only for remote registries
    from .lfs.http import HttpLfsStore, HttpSettings

    clean = strip_userinfo(location)
    creds = list(candidates(location))
    remote = GitRemote(clean, _mirror_dir(clean), clean, credentials=creds, ca_bundle=options.ca_bundle, verify_tls=options.verify_tls)

    def lfs() -> LfsStore:
        home = ([remote.credential] if remote.credential else []) + creds  # the one the git server accepted first
        given = options.lfs_url or os.environ.get("LFSREG_LFS_URL")
        if given:
            check_url(given)
        content = None if given else remote.lfs_url()
        if given:
            endpoint = given
            lfs_creds = home if origin(given) == origin(clean) else list(candidates(given))
        elif content:
            endpoint, lfs_creds = content, content_endpoint(content, clean, home, clean)
        else:
            endpoint, lfs_creds = endpoint_for(clean), home
        settings = HttpSettings(ca_bundle=options.ca_bundle, verify_tls=options.verify_tls, jobs=options.transfers, policy=options.policy)
        return HttpLfsStore(endpoint, lfs_creds, ObjectCache.default(), settings)

    return Publisher(RemoteBackend(remote, clean)), LazyLfsStore(lfs, clean)  # type: ignore[return-value]


def _ssh(location: str, options: RemoteOptions) -> tuple[Publisher, LfsStore]:
    """An SSH remote: git and LFS share one paramiko connection per operation (no ``ssh`` binary)."""
    from .git.ssh import ssh_client_factory  # paramiko is imported only for SSH remotes
    from .lfs.http import HttpSettings
    from .lfs.ssh import SshLfsStore
    from .ssh.connection import SshConnection

    url = parse_ssh_url(location)
    label = str(url)
    connection = SshConnection(url, options.ssh)
    remote = GitRemote(label, _mirror_dir(label), label, client_factory=ssh_client_factory(connection, url, label))

    def lfs() -> LfsStore:
        home = url.https_lfs_endpoint()  # the host the user named, as git-lfs reaches it over https
        given = options.lfs_url or os.environ.get("LFSREG_LFS_URL")
        if given:
            check_url(given)
        content = None if given else remote.lfs_url()
        endpoint, endpoint_creds = (given, list(candidates(given))) if given else (None, [])
        if content:
            endpoint, endpoint_creds = content, content_endpoint(content, home, list(candidates(home)), label)
        settings = HttpSettings(ca_bundle=options.ca_bundle, verify_tls=options.verify_tls, jobs=options.transfers, policy=options.policy)
        cache = ObjectCache.default()
        return SshLfsStore(
            connection,
            url,
            cache,
            settings,
            endpoint=endpoint,
            endpoint_credentials=endpoint_creds,
            https_credentials=list(candidates(home)),
            label=label,
        )

    return Publisher(RemoteBackend(remote, label, connection.close)), LazyLfsStore(lfs, label)  # type: ignore[return-value]


def check_url(url: str) -> None:
    """:class:`UsageError` naming ``url`` (without credentials) if its host or port does not parse."""
    if "://" not in url:
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check (99999, "abc")
    except ValueError as exc:
        raise UsageError(f"{strip_userinfo(url)}: not a valid URL: {exc}") from None


def open_location(location: str, *, create: bool, options: RemoteOptions | None = None) -> tuple[Publisher, LfsStore]:
    """The publisher and LFS store for ``location``: a path, a ``file://``/``http(s)://`` URL, or an SSH location.

    SSH locations are ``ssh://[user@]host[:port]/path`` and scp-like ``[user@]host:path``.
    ``create`` makes a missing or empty local directory a new repository (the first push).
    """
    options = options or RemoteOptions(ca_bundle=os.environ.get("LFSREG_CA_BUNDLE"))
    check_url(location)
    check_url(options.lfs_url or os.environ.get("LFSREG_LFS_URL") or "")
    if is_ssh_location(location):
        return _ssh(location, options)
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
        cache = ObjectCache.default()
        return Publisher(RemoteBackend(remote, location)), FileRemoteLfsStore(path, cache, location)
    if parts.scheme in ("http", "https"):
        return _http(location, options)
    raise UsageError(f"{strip_userinfo(location)}: unsupported URL scheme {parts.scheme!r}; use a path, file://, http(s):// or ssh://")
