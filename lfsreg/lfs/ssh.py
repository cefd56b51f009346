"""Git LFS for SSH remotes, the way git-lfs does it (git-lfs ``docs/api/authentication.md``).

The LFS server of an SSH remote is found by asking the SSH server: ``git-lfs-authenticate
<path> upload|download`` prints JSON shaped like a batch action (``href``, ``header``,
``expires_in``/``expires_at``); the batch API and transfers then run over HTTP(S) with that
header. It runs on the operation's existing SSH connection, once per operation (and again
when the header expires or is refused). Where the server lacks it, the pure-SSH protocol
(``git-lfs-transfer``, :mod:`lfsreg.lfs.sshtransfer`) is used if offered, else the HTTPS
endpoint git-lfs derives from the host (``https://host/path.git/info/lfs``) with the usual
credentials. An explicit endpoint (``--lfs-url``, ``LFSREG_LFS_URL``, ``.lfsconfig``) wins over all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..credentials import Credential, strip_userinfo
from ..errors import ProtocolError
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, no_progress
from ..ssh.connection import SshConnection
from ..ssh.errors import CommandMissing, command_failed
from ..ssh.url import SshUrl, remote_path_arg
from .batch import EXPIRY_MARGIN, parse_action
from .cache import ObjectCache
from .http import HttpSettings, http_queue
from .queue import TransferQueue
from .sshtransfer import SshTransferAdapter
from .store import CachedLfsStore

__all__ = ["LfsAuthentication", "SshAuthenticator", "SshLfsStore", "SshRemote", "parse_authenticate", "remote_path_arg"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LfsAuthentication:
    """What ``git-lfs-authenticate`` returned: where the batch API is and which headers it wants."""

    href: str
    header: dict[str, str] = field(repr=False)
    expires: float | None  # epoch seconds, None: does not expire

    def expired(self, now: float | None = None) -> bool:
        """True if it expires within :data:`lfsreg.lfs.batch.EXPIRY_MARGIN` seconds."""
        return self.expires is not None and (now or time.time()) + EXPIRY_MARGIN >= self.expires


def parse_authenticate(data: bytes, default_href: str, requested_at: float, label: str) -> LfsAuthentication:
    """Validate ``git-lfs-authenticate`` output; ``href`` defaults to the derived HTTPS endpoint."""
    what = f"{label}: git-lfs-authenticate"
    try:
        obj = json.loads(data)
    except ValueError:
        raise ProtocolError(f"{what} did not print JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} did not print a JSON object")
    action = parse_action({**obj, "href": obj.get("href") or default_href}, requested_at, what)
    return LfsAuthentication(action.href.rstrip("/"), action.header, action.expires)


class SshAuthenticator:
    """``git-lfs-authenticate`` on a connection, cached per operation; a :data:`lfsreg.lfs.batch.HeaderSource`."""

    def __init__(self, connection: SshConnection, url: SshUrl, label: str) -> None:
        self._connection = connection
        self._url = url
        self._label = label
        self._lock = threading.Lock()
        self._cache: dict[str, LfsAuthentication] = {}
        self.calls = 0

    def authenticate(self, operation: str, *, refresh: bool = False) -> LfsAuthentication:
        """The current authentication for ``operation`` (``upload`` or ``download``).

        Raises:
            CommandMissing: the server does not offer git-lfs-authenticate.
            LfsregError: it failed (e.g. a read-only key asking to upload), one classified line.
        """
        with self._lock:
            cached = self._cache.get(operation)
            if cached is not None and not refresh and not cached.expired():
                return cached
            requested_at = time.time()
            status, out, err = self._connection.run(f"git-lfs-authenticate {remote_path_arg(self._url.path)} {operation}")
            self.calls += 1
            if status != 0:
                raise command_failed(self._label, "git-lfs-authenticate", status, err, writing=operation == "upload")
            auth = parse_authenticate(out, self._url.https_lfs_endpoint(), requested_at, self._label)
            self._cache[operation] = auth
            shown = urlsplit(strip_userinfo(auth.href))._replace(query="", fragment="").geturl()
            log.debug("%s: LFS endpoint %s from git-lfs-authenticate (%s)", self._label, shown, operation)
            return auth

    def __call__(self, operation: str, refresh: bool) -> tuple[str, dict[str, str]]:
        """The batch API endpoint and headers for ``operation``."""
        auth = self.authenticate(operation, refresh=refresh)
        return auth.href, auth.header


class SshRemote:
    """:class:`lfsreg.lfs.store.Remote` of an SSH remote; picks its way to the LFS server on first use.

    In order: an explicit endpoint; ``git-lfs-authenticate`` (HTTP with its headers); the
    pure-SSH ``git-lfs-transfer``; the HTTPS endpoint derived from the host. Whichever it is,
    the transfer queue drives it.

    The caller decides which credentials each host gets: ``endpoint_credentials`` for
    ``endpoint``, ``https_credentials`` for the HTTPS endpoint derived from the SSH host.
    """

    def __init__(
        self,
        connection: SshConnection,
        url: SshUrl,
        settings: HttpSettings,
        *,
        endpoint: str | None,
        endpoint_credentials: Sequence[Credential] = (),
        https_credentials: Sequence[Credential] = (),
        label: str,
    ) -> None:
        self._connection = connection
        self._url = url
        self._settings = settings
        self._endpoint = endpoint
        self._endpoint_credentials = list(endpoint_credentials)
        self._https_credentials = list(https_credentials)
        self.label = label
        self.authenticator = SshAuthenticator(connection, url, label)
        self._queue: TransferQueue | None = None
        self._lock = threading.Lock()

    def _backend(self, operation: str) -> TransferQueue:
        with self._lock:
            if self._queue is None:
                self._queue = self._choose(operation)
            return self._queue

    def _choose(self, operation: str) -> TransferQueue:
        if self._endpoint:
            return http_queue(self._endpoint, self._endpoint_credentials, self._settings)
        try:
            auth = self.authenticator.authenticate(operation)
            return http_queue(auth.href, [], self._settings, header_source=self.authenticator)
        except CommandMissing as missing:
            log.debug("%s", missing)
        adapter = SshTransferAdapter(self._connection, self._url, self.label)
        try:
            adapter.probe(operation)
            log.debug("%s: using git-lfs-transfer (pure SSH)", self.label)
            return TransferQueue(adapter, jobs=self._settings.jobs, policy=self._settings.policy, ref="refs/heads/main")
        except CommandMissing as missing:
            log.debug("%s", missing)
        endpoint = self._url.https_lfs_endpoint()
        log.debug("%s: no LFS over SSH; using %s", self.label, endpoint)
        return http_queue(endpoint, self._https_credentials, self._settings)

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the LFS server lacks."""
        return self._backend("upload").missing(objects)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload what the server lacks."""
        self._backend("upload").upload(items, progress)

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Download ``objects`` into ``cache``."""
        self._backend("download").download(objects, cache, progress)


class SshLfsStore(CachedLfsStore):
    """:class:`lfsreg.lfs.store.LfsStore` of an SSH remote (see :class:`SshRemote`), cached in ``cache``."""

    def __init__(
        self,
        connection: SshConnection,
        url: SshUrl,
        cache: ObjectCache,
        settings: HttpSettings,
        *,
        endpoint: str | None = None,
        endpoint_credentials: Sequence[Credential] = (),
        https_credentials: Sequence[Credential] = (),
        label: str | None = None,
    ) -> None:
        label = label or str(url)
        self.ssh = SshRemote(
            connection,
            url,
            settings,
            endpoint=endpoint,
            endpoint_credentials=endpoint_credentials,
            https_credentials=https_credentials,
            label=label,
        )
        self.authenticator = self.ssh.authenticator
        super().__init__(self.ssh, cache, label)
