"""A minimal Docker Engine API client: ping, inspect, save (stream) and load (stream).

The engine is found the way docker's own client finds it: ``DOCKER_HOST`` (``unix://PATH``,
or ``tcp://HOST:PORT`` with ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``), else
``/var/run/docker.sock``, else the rootless socket ``$XDG_RUNTIME_DIR/docker.sock`` (and
Podman's, ``$XDG_RUNTIME_DIR/podman/podman.sock`` / ``/run/podman/podman.sock``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from ..errors import (
    ImageNotFound,
    InvalidImageError,
    LfsregError,
    PermissionDeniedError,
    RetriableError,
    UnreachableError,
    UsageError,
    error_for_status,
)

API_VERSION = "v1.41"  # Docker 20.10+, Podman 3+: everything lfsreg needs
DEFAULT_SOCKETS = ("/var/run/docker.sock",)


@dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: ``unix`` socket path, or an http(s) base URL with TLS files."""

    kind: str  # "unix" | "tcp"
    address: str
    tls: tuple[str, str, str] | None = None  # (ca, cert, key)

    def __str__(self) -> str:
        return f"unix://{self.address}" if self.kind == "unix" else self.address


def find_engine(environ: dict[str, str] | None = None) -> Endpoint:
    """The engine endpoint, by docker's own rules (see module docstring)."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return Endpoint("unix", host[len("unix://") :])
    if host.startswith("tcp://"):
        tls = env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        certs = env.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
        address = ("https://" if tls else "http://") + host[len("tcp://") :]
        files = (os.path.join(certs, "ca.pem"), os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem")) if tls else None
        return Endpoint("tcp", address, files)
    if host:
        raise UsageError(f"DOCKER_HOST={host!r}: only unix:// and tcp:// engines are supported")
    runtime = env.get("XDG_RUNTIME_DIR")
    candidates = [*DEFAULT_SOCKETS]
    if runtime:
        candidates += [os.path.join(runtime, "docker.sock"), os.path.join(runtime, "podman", "podman.sock")]
    candidates.append("/run/podman/podman.sock")
    for path in candidates:
        if os.path.exists(path):
            return Endpoint("unix", path)
    return Endpoint("unix", DEFAULT_SOCKETS[0])


class _UnixConnection(HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def _new_conn(self) -> HTTPConnection:
        timeout = self.timeout.connect_timeout if isinstance(self.timeout, urllib3.Timeout) else None
        return _UnixConnection(self._path, timeout if isinstance(timeout, int | float) else None)


class _UnixAdapter(HTTPAdapter):
    """requests over an AF_UNIX socket (the docker-py pattern)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self._path = path
        self._timeout = timeout
        super().__init__()

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> HTTPConnectionPool:
        # requests >= 2.32.2 calls this instead of get_connection; both must return our pool.
        return _UnixPool(self._path, self._timeout)

    def get_connection(self, url: Any, proxies: Any = None) -> HTTPConnectionPool:
        return _UnixPool(self._path, self._timeout)

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)


def _message(resp: requests.Response) -> str:
    """The engine's error message, on one line (its JSON ``message``, else the body's start)."""
    try:
        doc = resp.json()
        message = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    except ValueError:
        message = resp.text[:300]
    return " ".join(message.split())


class EngineClient:
    """The five calls lfsreg makes to an engine. Errors carry one line and a next step.

    Errors: :class:`UnreachableError` (no engine there), :class:`PermissionDeniedError` (the
    socket is not ours to use), HTTP statuses as :func:`lfsreg.errors.error_for_status` maps
    them (404 on an image: :class:`ImageNotFound`), :class:`InvalidImageError` (a load refused).
    """

    def __init__(self, endpoint: Endpoint | None = None, *, timeout: float | None = 600.0) -> None:
        self.endpoint = endpoint or find_engine()
        self._session = requests.Session()
        self._session.trust_env = False
        if self.endpoint.kind == "unix":
            self._base = f"http+unix://engine/{API_VERSION}"
            self._session.mount("http+unix://", _UnixAdapter(self.endpoint.address, timeout))
        else:
            self._base = f"{self.endpoint.address.rstrip('/')}/{API_VERSION}"
            if self.endpoint.tls:
                ca, cert, key = self.endpoint.tls
                self._session.verify = ca
                self._session.cert = (cert, key)
        self._timeout = timeout

    def _request(self, method: str, path: str, *, refused: str | None = None, **kwargs: Any) -> requests.Response:
        """Send a request; a status >= 400 raises (:class:`InvalidImageError` naming ``refused`` if given)."""
        try:
            resp = self._session.request(method, self._base + path, timeout=self._timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise self._unreachable(exc) from None
        if resp.status_code >= 400 and refused:
            raise InvalidImageError(f"the Docker engine refused {refused} (HTTP {resp.status_code}): {_message(resp)}")
        if resp.status_code >= 400:
            raise self._refused(resp)
        return resp

    def _unreachable(self, exc: Exception) -> LfsregError:
        where = str(self.endpoint)
        cause = exc
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        text = str(exc)
        if isinstance(cause, PermissionError) or "Permission denied" in text:
            return PermissionDeniedError(
                f"permission denied on the Docker engine socket {where}",
                hint="add your user to the 'docker' group (then log in again), or run as root",
            )
        return UnreachableError(
            f"cannot connect to the Docker engine at {where}: is it running?",
            hint="start it (systemctl start docker, or podman system service), or point DOCKER_HOST at it",
        )

    def _refused(self, resp: requests.Response) -> LfsregError:
        message = _message(resp)
        if resp.status_code == 404:
            return ImageNotFound(f"the Docker engine has no image: {message}", hint="list its images with: docker images")
        return error_for_status(resp.status_code, f"the Docker engine refused the request (HTTP {resp.status_code}): {message}")

    def ping(self) -> str:
        """The engine's API version (raises if it is unreachable)."""
        resp = self._request("GET", "/_ping")
        return resp.headers.get("Api-Version", "")

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        return dict(self._request("GET", f"/images/{quote(name, safe='/:@')}/json").json())

    def save(self, names: Iterable[str]) -> BinaryIO:
        """``GET /images/get?names=…``: a ``docker save`` tarball as a raw stream (caller closes)."""
        query = "&".join("names=" + quote(n, safe="") for n in names)
        resp = self._request("GET", f"/images/get?{query}", stream=True)
        resp.raw.decode_content = False
        return cast(BinaryIO, resp.raw)

    def load(self, body: Iterator[bytes]) -> list[str]:
        """``POST /images/load`` streaming ``body``; return the engine's messages.

        The engine reports failures inside its JSON progress stream, whatever the HTTP status:
        any ``errorDetail``/``error`` there raises :class:`InvalidImageError`; a stream cut
        short raises :class:`RetriableError`.
        """
        headers = {"Content-Type": "application/x-tar"}
        resp = self._request("POST", "/images/load", refused="the image", data=body, headers=headers, stream=True)
        messages: list[str] = []
        try:
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    messages.append(line.decode(errors="replace"))
                    continue
                if event.get("errorDetail") or event.get("error"):
                    detail = event.get("errorDetail") or {}
                    raise InvalidImageError(f"the Docker engine refused the image: {detail.get('message') or event.get('error')}")
                if event.get("stream"):
                    messages.append(str(event["stream"]).strip())
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise RetriableError(f"the Docker engine closed the load stream: {type(exc).__name__}") from None
        return messages
