"""Git LFS for SSH remotes, the way git-lfs does it (git-lfs ``docs/api/authentication.md``).

``git-lfs-authenticate <path> upload|download`` prints JSON shaped like a batch action
(``href``, ``header``, ``expires_in``/``expires_at``); the batch API and transfers then run
over HTTP(S) with that header. It runs on the operation's existing SSH connection, once per
operation (and again when the header expires or is refused). Which way an SSH remote's layers
go (this, ``git-lfs-transfer``, or an HTTPS endpoint) is decided in :mod:`lfsreg.registry.endpoint`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..credentials import strip_userinfo
from ..errors import ProtocolError
from ..ssh.connection import SshConnection
from ..ssh.errors import command_failed
from ..ssh.url import SshUrl, remote_path_arg
from .batch import EXPIRY_MARGIN, parse_action

__all__ = ["LfsAuthentication", "SshAuthenticator", "parse_authenticate", "remote_path_arg"]
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
