"""SSH repository locations: ``ssh://[user@]host[:port]/path`` and scp-like ``[user@]host:path``.

The path is kept as git sends it to the server: absolute (``/org/images.git``) for ``ssh://``
URLs, relative to the login's home (``org/images.git``) for the scp-like form.
"""

from __future__ import annotations

import getpass
import re
import shlex
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import UsageError

SCHEMES = ("ssh", "git+ssh", "ssh+git")
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)$")
_HOST_OK = re.compile(r"^[A-Za-z0-9._:%-]+$")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._/~@+-]+$")


def remote_path_arg(path: str) -> str:
    """A repository path as an argument of a server command (git-lfs passes it unquoted), quoted only if a shell would split it."""
    return path if _PLAIN_PATH.match(path) else shlex.quote(path)


@dataclass(frozen=True)
class SshUrl:
    """Where a repository is on an SSH server.

    Attributes:
        host: host name or address (IPv6 without brackets).
        port: TCP port, ``None`` for the default (22).
        user: login name; ``None`` means the local user's name, as OpenSSH does.
        path: the repository path as git sends it (``/org/images.git`` or ``org/images.git``).
        scp_like: whether the location was written ``host:path``.
    """

    host: str
    port: int | None
    user: str | None
    path: str
    scp_like: bool = False

    @property
    def login(self) -> str:
        """The user name to log in as (the URL's, else the local user's, as OpenSSH does)."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (OSError, KeyError):  # a container user without a name
            raise UsageError(f"{self}: no user name to log in as", hint="put it in the URL, e.g. git@host:org/images.git") from None

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH files this host under in ``known_hosts``: ``host`` or ``[host]:port``."""
        return self.host if self.port in (None, 22) else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        """The location in its canonical form (it holds no secret)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        if self.scp_like:
            return f"{user}{host}:{self.path}"
        port = f":{self.port}" if self.port is not None else ""
        path = self.path if self.path.startswith("/") else "/" + self.path
        return f"ssh://{user}{host}{port}{path}"

    def https_lfs_endpoint(self) -> str:
        """The LFS endpoint git-lfs derives for this remote: ``https://host/path.git/info/lfs`` (no port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path.lstrip("/").removeprefix("~/").rstrip("/")
        if not path.endswith(".git"):
            path += ".git"
        return f"https://{host}/{path}/info/lfs"


def is_ssh_location(location: str) -> bool:
    """True for ``ssh://`` (and ``git+ssh://``) URLs and for git's scp-like ``[user@]host:path``.

    As in git, a location is scp-like when a colon comes before any slash; ``./a:b`` is a path.
    """
    scheme, sep, _ = location.partition("://")
    if sep:
        return scheme.lower() in SCHEMES
    colon = location.find(":")
    slash = location.find("/")
    if colon <= 0 or (0 <= slash < colon):
        return False
    return colon != 1 or not location[0].isalpha()  # C:\dir is a Windows path


def parse_ssh_url(location: str) -> SshUrl:
    """Parse an SSH location; :class:`UsageError` if it is malformed."""
    if "://" in location:
        parts = urlsplit(location)
        if parts.scheme.lower() not in SCHEMES:
            raise UsageError(f"{location}: not an ssh:// URL")
        if parts.password is not None:
            raise UsageError("ssh URLs take no password; use a key (--identity or LFSREG_SSH_KEY)")
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"{_shown(location)}: bad port") from None
        host = parts.hostname or ""
        user = unquote(parts.username) if parts.username else None
        path = unquote(parts.path)
        if path.startswith("/~"):
            path = path[1:]
        url = SshUrl(host, port, user, path)
    else:
        m = _SCP.match(location)
        if not m:
            raise UsageError(f"{_shown(location)}: not an SSH location; use ssh://[user@]host[:port]/path or [user@]host:path")
        url = SshUrl(m["host"].strip("[]"), None, m["user"], m["path"], scp_like=True)
    if not url.host or not _HOST_OK.match(url.host) or url.host.startswith("-"):
        raise UsageError(f"{_shown(location)}: bad host name {url.host!r}")
    if url.user is not None and (not url.user or url.user.startswith("-")):
        raise UsageError(f"{_shown(location)}: bad user name")
    if not url.path.strip("/") or any(c in url.path for c in "\n\r\0"):
        raise UsageError(f"{_shown(location)}: no repository path", hint="e.g. git@github.com:org/images.git")
    return url


def _shown(location: str) -> str:
    """The location for a message, without any password it may carry."""
    if "://" in location:
        parts = urlsplit(location)
        if "@" in parts.netloc:
            return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    return location
