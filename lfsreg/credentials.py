"""Credentials for HTTPS remotes, from the places git and git-lfs users keep them.

Order (the first that the server accepts wins; a 401 moves on to the next):
URL userinfo, ``LFSREG_USERNAME``/``LFSREG_PASSWORD`` (or ``LFSREG_TOKEN``), ``~/.netrc``
(``$NETRC``), git's credential store file (``~/.git-credentials``, ``$XDG_CONFIG_HOME/git/credentials``),
and, only when ``LFSREG_GIT_CREDENTIAL=1`` and a ``git`` binary exists, ``git credential fill``.
Credentials are matched to the exact host (and port) and never appear in ``repr``, logs or errors.

Which of these a host may receive depends on who named it: the git host and an LFS URL the
user gave get every source (:func:`candidates`); a host that only the registry's content names
(``lfs.url`` in a committed ``.lfsconfig``) gets only what is stored for exactly that host
(:func:`stored_for`): never the environment's or netrc's, which the user meant for the hosts
they named.
"""

from __future__ import annotations

import netrc
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Credential:
    """A username and secret for one host. The secret is hidden from ``repr``."""

    username: str
    password: str = field(repr=False)
    source: str = "unknown"


def _host_key(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (safe to log or show), even when it does not parse."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a bad IPv6 host: cut the userinfo by hand
        return _USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=netloc).geturl()


def from_url(url: str) -> Credential | None:
    """Credentials embedded in the URL, if any."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return Credential(unquote(parts.username), unquote(parts.password or ""), "url")


def from_env() -> Credential | None:
    """``LFSREG_USERNAME`` + ``LFSREG_PASSWORD``, or ``LFSREG_TOKEN`` (user ``x-access-token`` by default)."""
    user = os.environ.get("LFSREG_USERNAME")
    secret = os.environ.get("LFSREG_PASSWORD") or os.environ.get("LFSREG_TOKEN")
    if not secret:
        return None
    return Credential(user or "x-access-token", secret, "environment")


def from_netrc(url: str) -> Credential | None:
    """The ``machine`` entry for the URL's host in ``$NETRC`` or ``~/.netrc``."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(_host_key(url)[1])
    except (netrc.NetrcParseError, OSError):
        return None
    if not entry or not entry[2]:
        return None
    return Credential(entry[0] or "", entry[2], "netrc")


def _credential_files() -> list[str]:
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [os.path.join(home, ".git-credentials"), os.path.join(xdg, "git", "credentials")]


def from_git_store(url: str) -> Iterator[Credential]:
    """Matching lines of git's ``store`` helper files (``https://user:pass@host[/path]``)."""
    want_scheme, want_host, want_port = _host_key(url)
    want_path = urlsplit(url).path.strip("/")
    for path in _credential_files():
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if not line or "://" not in line:
                continue
            scheme, host, port = _host_key(line)
            stored_path = urlsplit(line).path.strip("/")
            if (scheme, host, port) != (want_scheme, want_host, want_port):
                continue
            if stored_path and not want_path.startswith(stored_path):
                continue
            cred = from_url(line)
            if cred is not None:
                yield Credential(cred.username, cred.password, "git-credentials")


def from_git_helper(url: str) -> Credential | None:
    """``git credential fill``: only when ``LFSREG_GIT_CREDENTIAL=1`` and git is installed."""
    if os.environ.get("LFSREG_GIT_CREDENTIAL") != "1" or shutil.which("git") is None:
        return None
    scheme, host, port = _host_key(url)
    query = f"protocol={scheme}\nhost={host}{':' + str(port) if port else ''}\npath={urlsplit(url).path.lstrip('/')}\n\n"
    try:
        out = subprocess.run(
            ["git", "credential", "fill"],
            input=query,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if out.returncode != 0 or "password" not in fields:
        return None
    return Credential(fields.get("username", ""), fields["password"], "git credential")


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``, the scheme's default port filled in: one host to send credentials to."""
    scheme, host, port = _host_key(url)
    return scheme, host, port or {"http": 80, "https": 443}.get(scheme)


def stored_for(url: str) -> Iterator[Credential]:
    """Credentials kept for exactly ``url``'s host; never the environment's or netrc's.

    Its own userinfo, matching lines of git's credential store, and ``git credential fill`` (when enabled).
    """
    seen: set[tuple[str, str]] = set()
    for cred in (from_url(url), *from_git_store(url), from_git_helper(url)):
        if cred is not None and (cred.username, cred.password) not in seen:
            seen.add((cred.username, cred.password))
            yield cred


def candidates(url: str) -> Iterator[Credential]:
    """Every credential for ``url``'s host, in order of preference, without duplicates."""
    seen: set[tuple[str, str]] = set()
    sources = [from_url(url), from_env(), from_netrc(url), *from_git_store(url)]
    for cred in sources:
        if cred is not None and (cred.username, cred.password) not in seen:
            seen.add((cred.username, cred.password))
            yield cred
    helper = from_git_helper(url)
    if helper is not None and (helper.username, helper.password) not in seen:
        yield helper
