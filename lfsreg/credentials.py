"""Credentials for HTTPS remotes, from the places git and git-lfs users keep them.

Order (the first that the server accepts wins; a 401 moves on to the next):
URL userinfo, ``LFSREG_USERNAME``/``LFSREG_PASSWORD`` (or ``LFSREG_TOKEN``), ``~/.netrc``
(``$NETRC``), git's credential store file (``~/.git-credentials``, ``$XDG_CONFIG_HOME/git/credentials``),
and, only when ``LFSREG_GIT_CREDENTIAL=1`` and a ``git`` binary exists, ``git credential fill``.
Credentials are matched to the exact host (and port) and never appear in ``repr``, logs or errors.

:class:`CredentialSources` says where they are kept; it is read from the environment once, at
the API edge, and handed down. Which of them a host may receive depends on who named it: the
git host and an LFS URL the user gave get every source (:meth:`CredentialSources.for_named_host`);
a host that only the registry's content names (``lfs.url`` in a committed ``.lfsconfig``) gets
only what is stored for exactly that host (:meth:`CredentialSources.stored_for`): never the
environment's or netrc's, which the user meant for the hosts they named.
"""

from __future__ import annotations

import netrc
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
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


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``, the scheme's default port filled in: one host to send credentials to."""
    scheme, host, port = _host_key(url)
    return scheme, host, port or {"http": 80, "https": 443}.get(scheme)


def from_url(url: str) -> Credential | None:
    """Credentials embedded in the URL, if any."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return Credential(unquote(parts.username), unquote(parts.password or ""), "url")


def from_netrc(path: str | None, url: str) -> Credential | None:
    """The entry for the URL's host in the netrc file at ``path``."""
    if not path or not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(_host_key(url)[1])
    except (netrc.NetrcParseError, OSError):
        return None
    if not entry or not entry[2]:
        return None
    return Credential(entry[0] or "", entry[2], "netrc")


def from_git_store(files: Iterable[str], url: str) -> Iterator[Credential]:
    """Matching lines of git's ``store`` helper files (``https://user:pass@host[/path]``)."""
    want_scheme, want_host, want_port = _host_key(url)
    want_path = urlsplit(url).path.strip("/")
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if not line or "://" not in line:
                continue
            try:
                scheme, host, port = _host_key(line)
            except ValueError:  # a malformed line is no credential
                continue
            stored_path = urlsplit(line).path.strip("/")
            if (scheme, host, port) != (want_scheme, want_host, want_port):
                continue
            if stored_path and not want_path.startswith(stored_path):
                continue
            cred = from_url(line)
            if cred is not None:
                yield Credential(cred.username, cred.password, "git-credentials")


def from_git_helper(url: str) -> Credential | None:
    """``git credential fill`` for ``url`` (when a ``git`` binary exists)."""
    if shutil.which("git") is None:
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


def _unique(creds: Iterable[Credential | None]) -> list[Credential]:
    seen: set[tuple[str, str]] = set()
    out = []
    for cred in creds:
        if cred is not None and (cred.username, cred.password) not in seen:
            seen.add((cred.username, cred.password))
            out.append(cred)
    return out


@dataclass(frozen=True)
class CredentialSources:
    """Where credentials are kept (read from the environment once: :meth:`from_environment`).

    Attributes:
        environment: ``LFSREG_USERNAME`` + ``LFSREG_PASSWORD``, or ``LFSREG_TOKEN`` (user
            ``x-access-token`` by default); meant for the hosts the user names.
        netrc: the netrc file (``$NETRC``, default ``~/.netrc``).
        store_files: git's credential store files.
        git_helper: whether to ask ``git credential fill`` (``LFSREG_GIT_CREDENTIAL=1``).
    """

    environment: Credential | None = None
    netrc: str | None = None
    store_files: tuple[str, ...] = ()
    git_helper: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CredentialSources:
        """The sources as the environment (default: the process's) describes them."""
        env = os.environ if environ is None else environ
        home = env.get("HOME") or os.path.expanduser("~")
        xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        secret = env.get("LFSREG_PASSWORD") or env.get("LFSREG_TOKEN")
        user = env.get("LFSREG_USERNAME") or "x-access-token"
        return cls(
            environment=Credential(user, secret, "environment") if secret else None,
            netrc=env.get("NETRC") or os.path.join(home, ".netrc"),
            store_files=(os.path.join(home, ".git-credentials"), os.path.join(xdg, "git", "credentials")),
            git_helper=env.get("LFSREG_GIT_CREDENTIAL") == "1",
        )

    def for_named_host(self, url: str) -> list[Credential]:
        """Every credential for a host the user named (the git host, ``--lfs-url``), best first."""
        found = _unique([from_url(url), self.environment, from_netrc(self.netrc, url), *from_git_store(self.store_files, url)])
        helper = from_git_helper(url) if self.git_helper else None
        return _unique([*found, helper])

    def stored_for(self, url: str) -> list[Credential]:
        """Credentials kept for exactly ``url``'s host; never the environment's or netrc's.

        Its own userinfo, matching lines of git's credential store, and ``git credential fill``
        (when enabled).
        """
        helper = from_git_helper(url) if self.git_helper else None
        return _unique([from_url(url), *from_git_store(self.store_files, url), helper])
