"""``lfsreg usage``: the host's own meters for the registry's repository (:mod:`lfsreg.hosts.meters`).

The host kind and API address come from the registry's URL (github.com, gitlab.com, a host
named like ``gitlab.*``/``forgejo.*``/codeberg.org), or from the caller for any other host;
the token is the first credential lfsreg has for the git host (``LFSREG_TOKEN``, netrc, git's
credential store...), the one the API expects for a personal access token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..credentials import strip_userinfo
from ..errors import UsageError
from ..hosts.meters import KINDS, ApiAccess, HostMeters, read
from ..registry.location import DEFAULT_TIMEOUT, RemoteOptions
from ..ssh.url import is_ssh_location, parse_ssh_url


def _where(location: str) -> tuple[str, str, str, str]:
    """``(scheme, host, host[:port], repository path without .git)`` of a remote registry location."""
    if is_ssh_location(location):
        url = parse_ssh_url(location)
        return "https", url.host, url.host, url.path.strip("/").removesuffix(".git")
    parts = urlsplit(location)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{strip_userinfo(location)}: usage reads a git host's meters; for a local registry use `lfsreg du`")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts.scheme, parts.hostname.lower(), netloc, parts.path.strip("/").removesuffix(".git")


def guess_kind(host: str) -> str | None:
    """The API a host speaks, from its name; ``None`` if it cannot be told."""
    if host == "github.com" or host.endswith(".github.com"):
        return "github"
    if host == "gitlab.com" or host.startswith("gitlab."):
        return "gitlab"
    if host == "codeberg.org" or host.startswith(("forgejo.", "gitea.")):
        return "forgejo"
    return None


def host_usage(location: str, options: RemoteOptions, *, kind: str | None = None, api_url: str | None = None) -> HostMeters:
    """The meters the registry's host reports to the credentials lfsreg has for it.

    :class:`UsageError` for a local registry, an unknown ``kind``, or a host whose kind cannot
    be told from its name (then ``kind`` is needed).
    """
    scheme, host, netloc, path = _where(location)
    kind = kind or guess_kind(host)
    if kind not in KINDS:
        raise UsageError(
            f"{strip_userinfo(location)}: which API does {host} speak? give --host {'|'.join(KINDS)}",
            hint="and --api-url URL if its API is not at the usual address",
        )
    if api_url is None:
        api_url = "https://api.github.com" if kind == "github" and host == "github.com" else None
        api_url = api_url or f"{scheme}://{netloc}" + {"github": "/api/v3", "gitlab": "/api/v4", "forgejo": "/api/v1"}[kind]
    found = options.credentials.for_named_host(location) if options.credentials else []
    # The first with a password: a location's user name alone (ssh://git@host/..., https://alice@host/...)
    # is a login, not an API token, and must not hide LFSREG_TOKEN or a netrc entry.
    token = next((c.password for c in found if c.password), "")
    access = ApiAccess(api_url, token, options.ca_bundle, options.verify_tls, options.timeout or DEFAULT_TIMEOUT)
    return read(kind, access, project=path, user=path.split("/", 1)[0])


__all__ = ["guess_kind", "host_usage"]
