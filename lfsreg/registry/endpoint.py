"""LFS endpoint discovery, in one place: where a registry's layers live, and who gets which credentials.

The endpoint is, in order (git-lfs ``docs/api/server-discovery.md``):

1. the one the user gave (``--lfs-url``, ``LFSREG_LFS_URL``);
2. ``lfs.url`` in the ``.lfsconfig`` committed at the registry's tip;
3. for an SSH remote, what the server offers: ``git-lfs-authenticate`` (an HTTP endpoint and
   headers), else the pure-SSH ``git-lfs-transfer`` protocol;
4. ``<repo>.git/info/lfs`` on the git host (``https://host/path.git/info/lfs`` for SSH).

Credentials follow who named the host: the git host and an endpoint the user gave get every
source (:meth:`CredentialSources.for_named_host`); a host only the registry's content names
gets what is stored for exactly that host (:meth:`CredentialSources.stored_for`), and is never
reached over plain http. A storage host named by a batch response gets only the action's own
headers (:mod:`lfsreg.lfs.transfer`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..credentials import Credential, CredentialSources, origin, strip_userinfo
from ..errors import UsageError
from ..formats.lfs_pointer import LfsObject
from ..git.lfsconfig import lfs_url_from_lfsconfig
from ..git.store import GitStore
from ..lfs.cache import ObjectCache
from ..lfs.store import Remote
from ..progress import ProgressCallback, no_progress
from ..ssh.errors import CommandMissing
from ..ssh.url import SshUrl

if TYPE_CHECKING:
    # requests and paramiko are imported only when a remote of that kind is used (CLI start-up).
    from ..lfs.http import HttpSettings
    from ..lfs.queue import TransferQueue
    from ..ssh.connection import SshConnection

log = logging.getLogger(__name__)
LFSCONFIG = ".lfsconfig"


def check_url(url: str) -> None:
    """:class:`UsageError` naming ``url`` (without credentials) if its host or port does not parse."""
    if "://" not in url:
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check (99999, "abc")
    except ValueError as exc:
        raise UsageError(f"{strip_userinfo(url)}: not a valid URL: {exc}") from None


def derived_endpoint(remote_url: str) -> str:
    """The default LFS endpoint of an http(s) git remote: ``<remote>.git/info/lfs``."""
    base = remote_url.rstrip("/")
    return base + "/info/lfs" if base.endswith(".git") else base + ".git/info/lfs"


def lfsconfig_url(git: GitStore, tip: str | None) -> str | None:
    """``lfs.url`` from the ``.lfsconfig`` committed at ``tip``, if any."""
    if tip is None:
        return None
    data = git.snapshot(tip).read(LFSCONFIG)
    return lfs_url_from_lfsconfig(data) if data else None


def content_credentials(
    content_url: str, home: str, home_credentials: Sequence[Credential], sources: CredentialSources, label: str
) -> list[Credential]:
    """The credentials for an LFS URL that the registry's own ``.lfsconfig`` names.

    ``home`` is the http(s) URL of the host the user named: there the content URL gets
    ``home_credentials``; elsewhere only what is stored for exactly its host, and never over
    plain http (:class:`UsageError`: the user must name such an endpoint to trust it).
    """
    check_url(content_url)
    if origin(content_url) == origin(home):
        return list(home_credentials)
    if urlsplit(content_url).scheme != "https":
        raise UsageError(
            f"{label}: the registry's .lfsconfig names {strip_userinfo(content_url)}, plain http to another host "
            "than the registry's; nothing was sent there",
            hint="to use that LFS server anyway, name it yourself with --lfs-url URL (or LFSREG_LFS_URL)",
        )
    return sources.stored_for(content_url)


class DeferredRemote:
    """A :class:`lfsreg.lfs.store.Remote` chosen on first use, by ``choose(operation)``.

    The choice waits because its inputs come late: the ``.lfsconfig`` of the tip fetched first,
    and over SSH what the server offers for the operation at hand.
    """

    def __init__(self, choose: Callable[[str], Remote], label: str) -> None:
        self._choose = choose
        self._chosen: Remote | None = None
        self._lock = threading.Lock()
        self.label = label

    def _remote(self, operation: str) -> Remote:
        with self._lock:
            if self._chosen is None:
                self._chosen = self._choose(operation)
            return self._chosen

    def chosen(self, operation: str) -> Remote:
        """The remote that serves ``operation`` (chosen now if not yet), e.g. to ask it for download URLs."""
        return self._remote(operation)

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the LFS server lacks."""
        return self._remote("upload").missing(objects)

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """Objects the LFS server cannot serve, with why."""
        return self._remote("download").probe(objects)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload what the server lacks."""
        self._remote("upload").upload(items, progress)

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Download ``objects`` into ``cache``."""
        self._remote("download").download(objects, cache, progress)


def http_remote(
    git_url: str,
    home_credentials: Sequence[Credential],
    given: str | None,
    content: str | None,
    sources: CredentialSources,
    settings: HttpSettings,
    *,
    ref: str | None = None,
) -> TransferQueue:
    """The LFS server of an http(s) git remote at ``git_url`` (see the module docstring).

    ``ref`` is the registry branch, sent with each batch request (git-lfs sends the pushed ref).
    """
    from ..lfs.http import http_queue

    if given:
        credentials = list(home_credentials) if origin(given) == origin(git_url) else sources.for_named_host(given)
        return http_queue(given, credentials, settings, ref=ref)
    if content:
        return http_queue(content, content_credentials(content, git_url, home_credentials, sources, git_url), settings, ref=ref)
    return http_queue(derived_endpoint(git_url), home_credentials, settings, ref=ref)


def ssh_remote(
    connection: SshConnection,
    url: SshUrl,
    operation: str,
    given: str | None,
    content: str | None,
    sources: CredentialSources,
    settings: HttpSettings,
    label: str,
    *,
    ref: str | None = None,
) -> TransferQueue:
    """The LFS server of an SSH remote, found the way git-lfs finds it (see the module docstring).

    ``ref`` is the registry branch, sent with each batch request (HTTP) or ``batch`` command (SSH).
    """
    from ..lfs.http import http_queue
    from ..lfs.queue import TransferQueue
    from ..lfs.ssh import SshAuthenticator
    from ..lfs.sshtransfer import SshTransferAdapter

    home = url.https_lfs_endpoint()  # the host the user named, as git-lfs reaches it over https
    if given:
        return http_queue(given, sources.for_named_host(given), settings, ref=ref)
    if content:
        return http_queue(content, content_credentials(content, home, sources.for_named_host(home), sources, label), settings, ref=ref)
    authenticator = SshAuthenticator(connection, url, label)
    try:
        auth = authenticator.authenticate(operation)
        return http_queue(auth.href, [], settings, ref=ref, header_source=authenticator)
    except CommandMissing as missing:
        log.debug("%s", missing)
    adapter = SshTransferAdapter(connection, url, label)
    try:
        adapter.probe(operation)
        log.debug("%s: using git-lfs-transfer (pure SSH)", label)
        return TransferQueue(adapter, jobs=settings.jobs, policy=settings.policy, ref=ref)
    except CommandMissing as missing:
        log.debug("%s", missing)
    log.debug("%s: no LFS over SSH; using %s", label, home)
    return http_queue(home, sources.for_named_host(home), settings, ref=ref)
