"""Where a registry lives: a local bare repository, or a remote reached by URL.

:func:`open_location` returns one backend object for every kind: the git side that
:class:`lfsreg.registry.transaction.Publisher` publishes through (``git``, ``tip``, ``swap``,
``close``) and ``lfs``, the store of its layers. Push and pull never know which kind they talk
to. :class:`RemoteOptions` carries every setting, the environment's included: it is read once,
by :meth:`RemoteOptions.resolve` at the API edge, and nothing below reads it again.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..credentials import CredentialSources, strip_userinfo
from ..errors import LfsregError, UsageError
from ..git.store import GitStore
from ..git.userconfig import http_ssl_cainfo
from ..lfs.cache import ObjectCache, cache_root
from ..lfs.retry import RetryPolicy
from ..lfs.store import CachedLfsStore, LfsStore, LocalLfsStore, Remote
from ..ssh.settings import SshSettings
from ..ssh.url import is_ssh_location, parse_ssh_url
from .endpoint import DeferredRemote, check_url, lfsconfig_url

if TYPE_CHECKING:
    from ..git.remote import GitRemote
    from ..lfs.http import HttpSettings

#: Seconds to connect and per read for smart HTTP when the options name none (HttpSettings' own default).
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class RemoteOptions:
    """Settings for registries; what is unset comes from the environment (:meth:`resolve`).

    Attributes:
        lfs_url: LFS endpoint the user names (``LFSREG_LFS_URL``); else ``lfs.url`` in the
            registry's ``.lfsconfig``; else what the server offers or ``<remote>.git/info/lfs``.
        ca_bundle: CA certificates for TLS, for git and LFS alike (:func:`ca_bundle_from`:
            ``LFSREG_CA_BUNDLE``, ``GIT_SSL_CAINFO``, git's ``http.sslCAInfo``,
            ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``; else the system's CAs).
        verify_tls: ``False`` only for testing against self-signed servers.
        transfers: concurrent LFS transfers (git-lfs's default is 8).
        policy: retry policy of the LFS transfer queue and of the git exchanges
            (``LFSREG_RETRIES`` sets its number of retries when the policy is the default one).
        timeout: seconds to connect, and that any single read may wait, for HTTP (LFS and smart
            HTTP) and for the SSH connect, handshake and authentication (``LFSREG_TIMEOUT``;
            default 60 for HTTP, 30 for SSH). Past it the exchange counts as stalled and is retried.
        deadline: seconds an LFS API request (batch, verify) or a smart-HTTP request (refs,
            fetch, push) may take from start to last byte; an LFS transfer gets this plus its
            size at 16 KiB/s (``LFSREG_DEADLINE``; default 300). Past it the exchange counts as
            stalled and is retried.
        ssh: keys and host-key checking for SSH remotes (``LFSREG_SSH_*`` fill what is unset).
        cache_dir: the local cache (``LFSREG_CACHE``, else ``$XDG_CACHE_HOME/lfsreg``).
        credentials: where credentials are kept (``LFSREG_USERNAME``/``LFSREG_PASSWORD`` or
            ``LFSREG_TOKEN``, ``$NETRC``, git's credential files, ``LFSREG_GIT_CREDENTIAL``).
    """

    lfs_url: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True
    transfers: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    ssh: SshSettings = field(default_factory=SshSettings)
    cache_dir: str | None = None
    credentials: CredentialSources | None = None
    timeout: float | None = None
    deadline: float | None = None

    def resolve(self, environ: Mapping[str, str] | None = None) -> RemoteOptions:
        """These options with every unset field read from ``environ`` (default: the process's)."""
        env = os.environ if environ is None else environ
        lfs_url = self.lfs_url or env.get("LFSREG_LFS_URL") or None
        check_url(lfs_url or "")
        timeout = _seconds(self.timeout, env, "LFSREG_TIMEOUT")
        policy = self.policy
        retries = env.get("LFSREG_RETRIES", "").strip()
        if retries and policy == RetryPolicy():
            if not retries.isdigit():
                raise UsageError(f"LFSREG_RETRIES: expected a number of retries (0 or more), not {retries!r}")
            policy = replace(policy, max_retries=int(retries))
        ssh = self.ssh.resolve()
        return replace(
            self,
            lfs_url=lfs_url,
            ca_bundle=self.ca_bundle or ca_bundle_from(env),
            ssh=ssh if timeout is None else replace(ssh, timeout=timeout),
            timeout=timeout,
            deadline=_seconds(self.deadline, env, "LFSREG_DEADLINE"),
            policy=policy,
            cache_dir=self.cache_dir or cache_root(),
            credentials=self.credentials or CredentialSources.from_environment(env),
        )


#: Where a CA bundle may be named, first wins: lfsreg's own, git's, requests', then OpenSSL's.
CA_BUNDLE_VARIABLES = ("LFSREG_CA_BUNDLE", "GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def ca_bundle_from(env: Mapping[str, str]) -> str | None:
    """The CA bundle ``env`` names for git and LFS alike; ``None``: the system's CAs.

    ``LFSREG_CA_BUNDLE``, else git's ``GIT_SSL_CAINFO``, else ``http.sslCAInfo`` in the user's
    git configuration (what stock git would use), else requests' ``REQUESTS_CA_BUNDLE`` and
    ``CURL_CA_BUNDLE``, else OpenSSL's ``SSL_CERT_FILE``. The one place both clients get it
    from: git and LFS never verify against different CAs.
    """
    for name in CA_BUNDLE_VARIABLES[:2]:
        if env.get(name):
            return env[name]
    configured = http_ssl_cainfo(env)
    if configured:
        return configured
    return next((env[name] for name in CA_BUNDLE_VARIABLES[2:] if env.get(name)), None)


def _seconds(given: float | None, env: Mapping[str, str], name: str) -> float | None:
    """A duration given in the options, else from ``env[name]``; :class:`UsageError` unless positive and finite."""
    raw: str | float
    if given is not None:
        raw, where = given, name.removeprefix("LFSREG_").lower()
    else:
        raw, where = env.get(name, "").strip(), name
        if not raw:
            return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UsageError(f"{where}: expected a number of seconds greater than 0, not {raw!r}")
    return seconds


def _http_settings(options: RemoteOptions) -> HttpSettings:
    from ..lfs.http import HttpSettings  # requests is imported only for remote registries

    settings = HttpSettings(ca_bundle=options.ca_bundle, verify_tls=options.verify_tls, jobs=options.transfers, policy=options.policy)
    if options.timeout:
        settings = replace(settings, timeout=options.timeout)
    if options.deadline:
        settings = replace(settings, deadline=options.deadline)
    return settings


@dataclass
class LocalBackend:
    """A bare repository on this machine: commits go straight into it, layers into its ``lfs/``."""

    git: GitStore
    label: str
    lfs: LfsStore

    def tip(self) -> str | None:
        """The branch's commit."""
        return self.git.head()

    def history_tip(self) -> str | None:
        """The branch's commit; its whole history is in :attr:`git`."""
        return self.git.head()

    def close(self) -> None:
        """Release the repository's files."""
        self.git.close()

    def complete(self, tip: str) -> None:
        """Nothing to do: a local repository holds every object of its history."""

    def swap(self, old: str | None, new: str) -> bool:
        """Compare-and-swap under git's lock protocol; pack loose objects now and then."""
        if not self.git.compare_and_swap(old, new):
            return False
        self.git.maybe_pack()
        return True


class RemoteBackend:
    """A remote repository: commits are built in a mirror and pushed with compare-and-swap.

    ``lfs`` keeps layers in the local cache and moves them with the remote's LFS server, which
    is found on first use (:mod:`lfsreg.registry.endpoint`).
    """

    def __init__(self, remote: GitRemote, label: str, lfs: LfsStore, on_close: Callable[[], None] | None = None) -> None:
        self.remote = remote
        self.label = label
        self.lfs = lfs
        self._on_close = on_close  # e.g. an SSH connection shared by git and LFS
        self._tip: str | None = None
        self._fetched = False

    @property
    def git(self) -> GitStore:
        """The local mirror."""
        return self.remote.mirror

    def close(self) -> None:
        """Release the mirror's files and the connection."""
        self.remote.mirror.close()
        if self._on_close is not None:
            self._on_close()

    def tip(self) -> str | None:
        """Fetch and return the remote's tip."""
        self._tip = self.remote.fetch_tip()
        self._fetched = True
        return self._tip

    def history_tip(self) -> str | None:
        """Fetch the remote's tip with its whole history (the mirror is shallow until then); return it."""
        tip = self.tip()
        if tip is not None:
            self.remote.deepen(tip)
        return tip

    def complete(self, tip: str) -> None:
        """Fetch every object of ``tip``'s history into the mirror (which may hold only what was read)."""
        self.remote.deepen(tip)

    def swap(self, old: str | None, new: str) -> bool:
        """Push ``new`` if the remote is still at ``old``."""
        return self.remote.push(old, new)

    def branch(self) -> str:
        """The remote's registry branch, e.g. ``refs/heads/master`` (its ``HEAD`` is read now if not yet)."""
        if not self._fetched:
            self.tip()
        return self.remote.branch.decode()

    def lfsconfig(self) -> str | None:
        """``lfs.url`` in the ``.lfsconfig`` at the remote's tip (fetched now if not yet)."""
        return lfsconfig_url(self.git, self._tip if self._fetched else self.tip())


Backend = LocalBackend | RemoteBackend


def _mirror_dir(cache_dir: str, url: str) -> str:
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return os.path.join(cache_dir, "mirrors", f"{key}.git")


def _cache(options: RemoteOptions) -> ObjectCache:
    return ObjectCache.default(options.cache_dir)


def _check_ca_bundle(options: RemoteOptions) -> None:
    """Refuse a CA bundle that is not a file before any connection (git and LFS would fail apart)."""
    if options.ca_bundle and not os.path.isfile(options.ca_bundle):
        raise UsageError(
            f"CA bundle {options.ca_bundle} is not a file",
            hint="--ca-bundle, " + ", ".join(CA_BUNDLE_VARIABLES) + " or git's http.sslCAInfo must name a PEM file of CA certificates",
        )


def _http(location: str, options: RemoteOptions, sources: CredentialSources) -> RemoteBackend:
    from ..git.remote import GitRemote  # the git client of remotes: a local registry needs none of it
    from ..git.transport import DEFAULT_DEADLINE
    from .endpoint import http_remote

    _check_ca_bundle(options)
    clean = strip_userinfo(location)
    creds = sources.for_named_host(location)
    remote = GitRemote(
        clean,
        _mirror_dir(options.cache_dir or cache_root(), clean),
        clean,
        credentials=creds,
        ca_bundle=options.ca_bundle,
        verify_tls=options.verify_tls,
        timeout=options.timeout or DEFAULT_TIMEOUT,
        deadline=options.deadline or DEFAULT_DEADLINE,  # HttpSettings' own default too
        policy=options.policy,
    )

    def choose(operation: str) -> Remote:
        home = ([remote.credential] if remote.credential else []) + creds  # the one the git server accepted first
        content = None if options.lfs_url else backend.lfsconfig()
        settings = _http_settings(options)  # here: requests is imported only once LFS is used (not by tags, images)
        return http_remote(clean, home, options.lfs_url, content, sources, settings, ref=backend.branch())

    backend = RemoteBackend(remote, clean, CachedLfsStore(DeferredRemote(choose, clean), _cache(options), clean))
    return backend


def _ssh(location: str, options: RemoteOptions, sources: CredentialSources) -> RemoteBackend:
    """An SSH remote: git and LFS share one paramiko connection per operation (no ``ssh`` binary)."""
    from ..git.remote import GitRemote
    from ..git.ssh import ssh_client_factory  # paramiko is imported only for SSH remotes
    from ..ssh.connection import SshConnection
    from .endpoint import ssh_remote

    _check_ca_bundle(options)  # the LFS server an SSH remote names may speak HTTPS
    url = parse_ssh_url(location)
    label = str(url)
    connection = SshConnection(url, options.ssh)
    remote = GitRemote(
        label,
        _mirror_dir(options.cache_dir or cache_root(), label),
        label,
        client_factory=ssh_client_factory(connection, url, label),
        policy=options.policy,
    )
    settings = _http_settings(options)

    def choose(operation: str) -> Remote:
        content = None if options.lfs_url else backend.lfsconfig()
        return ssh_remote(connection, url, operation, options.lfs_url, content, sources, settings, label, ref=backend.branch())

    lfs = CachedLfsStore(DeferredRemote(choose, label), _cache(options), label)
    backend = RemoteBackend(remote, label, lfs, connection.close)
    return backend


def local_directory(location: str) -> str | None:
    """The directory of a local registry (a path or a ``file://`` URL), which a push may create; else ``None``."""
    if is_ssh_location(location):
        return None
    if "://" not in location:
        return location
    if not location.lower().startswith("file://"):
        return None
    try:
        parts = urlsplit(location)
    except ValueError:  # a malformed URL: open_location names it as bad usage
        return None
    return unquote(parts.path)


def fresh_local_path(location: str) -> tuple[str, bool] | None:
    """``(path, existed)`` when a push would create the registry at a local ``path``: missing or an empty directory."""
    path = local_directory(location)
    if path is None:
        return None
    if not os.path.exists(path):
        return path, False
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        return path, True
    return None


def no_commit(path: str) -> bool:
    """Whether the bare repository at ``path`` has no registry commit (``False`` if it cannot be read)."""
    try:
        git = GitStore.open(path)
    except LfsregError:
        return False  # not a repository: leave it rather than guess
    try:
        return git.head() is None
    finally:
        git.close()


def open_location(location: str, *, create: bool, options: RemoteOptions | None = None) -> Backend:
    """The backend of the registry at ``location``: a path, a ``file://``/``http(s)://`` URL, or an SSH location.

    SSH locations are ``ssh://[user@]host[:port]/path`` and scp-like ``[user@]host:path``.
    ``create`` makes a missing or empty local directory a new repository (the first push).
    ``options`` should come resolved (:meth:`RemoteOptions.resolve`); unresolved ones are
    resolved here.
    """
    options = options if options is not None and options.credentials is not None else (options or RemoteOptions()).resolve()
    sources = options.credentials or CredentialSources()
    check_url(location)
    if is_ssh_location(location):
        return _ssh(location, options, sources)
    if "://" not in location:
        if create and (not os.path.exists(location) or (os.path.isdir(location) and not os.listdir(location))):
            git = GitStore.init(location)
        else:
            git = GitStore.open(location)
        return LocalBackend(git, location, LocalLfsStore(location))
    parts = urlsplit(location)
    if parts.scheme == "file":
        from ..git.remote import GitRemote
        from ..lfs.filestore import FileRemoteLfsStore

        path = unquote(parts.path)
        if create and not os.path.exists(path):
            GitStore.init(path)
        GitStore.open(path)  # a clear error for a missing or non-git directory
        remote = GitRemote(location, _mirror_dir(options.cache_dir or cache_root(), location), location, policy=options.policy)
        return RemoteBackend(remote, location, FileRemoteLfsStore(path, _cache(options), location))
    if parts.scheme in ("http", "https"):
        return _http(location, options, sources)
    raise UsageError(f"{strip_userinfo(location)}: unsupported URL scheme {parts.scheme!r}; use a path, file://, http(s):// or ssh://")


__all__ = ["Backend", "LocalBackend", "RemoteBackend", "RemoteOptions", "fresh_local_path", "local_directory", "no_commit", "open_location"]
