"""Who may learn which secret: registry credentials, their sources, and the auth challenges of a registry.

Where credentials for a registry host come from, first found wins:

1. given for it explicitly (``--src-creds``/``--dest-creds``, or their environment variables);
2. the Docker config (``$DOCKER_CONFIG/config.json``, default ``~/.docker/config.json``):
   ``auths[HOST].auth`` (base64 ``USER:PASSWORD``) or ``auths[HOST].username``/``password``;
3. containers' auth file (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``,
   else ``~/.config/containers/auth.json``), same format;
4. a credential helper (``credHelpers[HOST]`` or ``credsStore`` in the Docker config) only when
   asked for with ``LFSREG_DOCKER_CREDENTIAL_HELPER=1`` and its ``docker-credential-NAME`` binary
   is on ``PATH``.

Keys are matched by host (and port) only: ``HOST``, ``https://HOST`` and ``https://HOST/v1/``
name the same registry; Docker Hub's ``https://index.docker.io/v1/`` key serves ``docker.io``.

Where they are sent (see :func:`realm_may_receive`): to the registry host they were found for,
and to the token realm that host names in its ``WWW-Authenticate: Bearer`` challenge -- that is
the bearer flow (Docker Hub's realm is ``auth.docker.io``), as docker and skopeo do -- but only
when the realm is reached over HTTPS, or over plain HTTP when both the realm and the registry
are on this machine (loopback). A realm that would downgrade an HTTPS registry to HTTP is
refused outright; a plain-HTTP realm elsewhere gets no credentials (an anonymous token request).
Credentials never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..credentials import Credential
from ..errors import ProtocolError, UsageError

#: Docker Hub's names: the API host, and the keys its credentials are kept under.
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``scheme`` in lower case and its parameters."""

    scheme: str
    params: Mapping[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (``Bearer realm="…",service="…"``, ``Basic realm="…"``)."""
    out: list[Challenge] = []
    text = header.strip()
    while text:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", text)
        if not m:
            break
        scheme = m.group(1).lower()
        text = text[m.end() :]
        params: dict[str, str] = {}
        while True:
            p = _PARAM.match(text)
            if not p or not p.group(0).strip():
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
            text = text[p.end() :]
        out.append(Challenge(scheme, params))
        text = text.lstrip(", ")
    return out


def host_key(key: str) -> str:
    """The registry host an auth-file key names: ``https://HOST/v1/`` → ``HOST`` (lower case; Hub aliases folded)."""
    key = key.strip()
    if "://" in key:
        key = urlsplit(key).netloc or key
    host = key.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``NAME[:PORT]``, ``[V6]:PORT``) is this machine: ``localhost`` or a loopback address."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_creds(text: str, what: str) -> Credential:
    """``USER[:PASSWORD]`` as skopeo's ``--creds`` takes it; a bad value is a :class:`UsageError` that never shows it."""
    user, sep, password = text.partition(":")
    if not user or not sep:
        raise UsageError(f"{what}: expected USER:PASSWORD")
    return Credential(user, password, what)


def _decode_auth(value: str) -> Credential | None:
    try:
        user, sep, password = base64.b64decode(value, validate=False).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return Credential(user, password, "auth file") if sep and user else None


def _entry_for(doc: object, host: str) -> dict[str, object] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("auths"), dict):
        return None
    for key, entry in doc["auths"].items():
        if isinstance(key, str) and isinstance(entry, dict) and host_key(key) == host:
            return entry
    return None


def _read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def from_auth_file(path: str, host: str) -> Credential | None:
    """The credential a Docker ``config.json`` or containers ``auth.json`` keeps for ``host``, if any."""
    entry = _entry_for(_read_json(path), host)
    if entry is None:
        return None
    auth, user, password = entry.get("auth"), entry.get("username"), entry.get("password")
    if isinstance(auth, str) and auth:
        return _decode_auth(auth)
    if isinstance(user, str) and isinstance(password, str) and user:
        return Credential(user, password, "auth file")
    return None


def from_helper(config_path: str, host: str) -> Credential | None:
    """Ask the credential helper the Docker config names for ``host`` (``docker-credential-NAME get``)."""
    doc = _read_json(config_path)
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers")
    helpers = helpers if isinstance(helpers, dict) else {}
    name = next((v for k, v in helpers.items() if isinstance(k, str) and host_key(k) == host), None) or doc.get("credsStore")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return None
    binary = shutil.which(f"docker-credential-{name}")
    if binary is None:
        return None
    server = "https://index.docker.io/v1/" if host == DOCKER_HUB else host
    try:
        out = subprocess.run([binary, "get"], input=server, capture_output=True, text=True, timeout=60, check=False)
        answer = json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("Secret"), str):
        return None
    user = answer.get("Username") if isinstance(answer.get("Username"), str) else ""
    return Credential(user or "<token>", answer["Secret"], f"docker-credential-{name}")


@dataclass(frozen=True)
class AuthSources:
    """Where registry credentials are kept (read from the environment once: :meth:`from_environment`)."""

    docker_config: str | None = None
    auth_files: tuple[str, ...] = ()
    helpers: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AuthSources:
        """The sources as the environment (default: the process's) names them."""
        env = os.environ if environ is None else environ
        home = env.get("HOME") or os.path.expanduser("~")
        docker_dir = env.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
        files = []
        if env.get("REGISTRY_AUTH_FILE"):
            files.append(env["REGISTRY_AUTH_FILE"])
        else:
            if env.get("XDG_RUNTIME_DIR"):
                files.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
            files.append(os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "containers", "auth.json"))
        return cls(os.path.join(docker_dir, "config.json"), tuple(files), env.get("LFSREG_DOCKER_CREDENTIAL_HELPER") == "1")

    def lookup(self, host: str) -> Credential | None:
        """The stored credential for registry ``host`` (``HOST[:PORT]``), if any."""
        host = host_key(host)
        for path in (self.docker_config, *self.auth_files):
            if path and (cred := from_auth_file(path, host)) is not None:
                return cred
        if self.helpers and self.docker_config:
            return from_helper(self.docker_config, host)
        return None


def realm_may_receive(realm: str, registry_scheme: str, registry_host: str) -> bool:
    """Whether the registry's credentials may go to the token ``realm`` (see the module docstring).

    Raises :class:`ProtocolError` for a realm no request may go to at all: not http(s), or
    plain HTTP named by an HTTPS registry (a downgrade).
    """
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProtocolError(f"{registry_host}: token realm {realm[:100]!r} is not an http(s) URL")
    if parts.scheme == "http" and registry_scheme == "https":
        raise ProtocolError(
            f"{registry_host}: refusing token realm {parts.scheme}://{parts.netloc}: it would downgrade HTTPS to plain HTTP"
        )
    if parts.username is not None:
        raise ProtocolError(f"{registry_host}: token realm carries credentials of its own")
    if parts.scheme == "https":
        return True
    return is_loopback(parts.netloc) and is_loopback(registry_host)
