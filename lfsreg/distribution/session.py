"""One registry host over the OCI distribution API: every request, its auth and its retries, in one loop.

:class:`RegistrySession` sends each request to ``SCHEME://HOST/v2/…``; on a ``401`` it answers
the challenge -- ``Basic``: the credential (if any) from then on; ``Bearer``: a token from the
realm for the request's scope, cached per scope until it expires -- and sends the request once
more. Retriable answers (429, 5xx) and cut connections are retried with the project's
:class:`lfsreg.lfs.retry.RetryPolicy` (backoff, the server's ``Retry-After``, a time limit),
in the same loop. Plain HTTP only for a loopback host or when ``insecure`` is set.

A credential goes only to the registry host it was given for and to a token realm that
:func:`lfsreg.distribution.auth.realm_may_receive` allows; never in a redirect to another host
(requests drops ``Authorization`` then; ``~/.netrc`` is never consulted).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from ..credentials import Credential
from ..errors import AuthenticationError, LfsregError, ProtocolError, RetriableError, UnreachableError, error_for_status, tls_error
from ..lfs.batch import parse_retry_after
from ..lfs.deadline import READ_ERRORS, read_bounded, request_error
from ..lfs.http import HttpSettings, make_session
from ..lfs.retry import RetryPolicy
from .auth import Challenge, is_loopback, parse_challenges, realm_may_receive

log = logging.getLogger(__name__)
MAX_ERROR_BODY = 64 << 10
MAX_TOKEN_BODY = 1 << 20
#: Tokens are renewed this many seconds before they expire.
TOKEN_MARGIN = 10.0


@dataclass
class _Token:
    value: str
    expires: float


@dataclass
class RegistryAccess:
    """How to reach one registry: credential, TLS, retries.

    Attributes:
        credential: sent to this host (and an allowed token realm) when it asks; ``None``: anonymous.
        insecure: plain HTTP (skopeo's ``--tls-verify=false``); loopback hosts always use it.
    """

    credential: Credential | None = field(default=None, repr=False)
    insecure: bool = False
    settings: HttpSettings = field(default_factory=HttpSettings)


Body = Callable[[], Any]
"""Makes a request body afresh for each attempt (bytes, or a file-like read to its end)."""


class RegistrySession:
    """Requests to one registry host (thread-safe: a token cache under a lock, requests' pooled session)."""

    def __init__(self, host: str, access: RegistryAccess, *, policy: RetryPolicy | None = None) -> None:
        self.host = host
        self.access = access
        self.scheme = "http" if access.insecure or is_loopback(host) else "https"
        self.base = f"{self.scheme}://{host}"
        self.policy = policy or access.settings.policy
        self._http = make_session(access.settings)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._basic = False  # the host asked for Basic: send the credential with every request
        self._bearer: Challenge | None = None
        self.requests = 0  # requests sent to the registry host (not to the realm), for tests and logs

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # -- auth ---------------------------------------------------------------------------------
    def _auth_header(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
            if token is not None and token.expires > time.monotonic():
                return {"Authorization": f"Bearer {token.value}"}
            basic = self._basic
        cred = self.access.credential
        if basic and cred is not None:
            return {"Authorization": "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()}
        return {}

    def _answer_challenge(self, resp: requests.Response, scope: str, what: str) -> None:
        """Get what the ``401`` asks for (a token, or the go-ahead for Basic); raise if there is nothing to give."""
        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.params.get("realm")), None)
        if bearer is not None:
            with self._lock:
                self._bearer = bearer
            self._fetch_token(bearer, scope, what)
            return
        if any(c.scheme == "basic" for c in challenges) and self.access.credential is not None:
            with self._lock:
                already, self._basic = self._basic, True
            if not already:
                return
        raise self._refused(what)

    def _token_ahead(self, scope: str, what: str) -> None:
        """Once the host has asked for a bearer token, get one for a new scope before the request.

        Saves the 401 round trip per scope, and a request body (a whole blob) sent in vain.
        """
        with self._lock:
            bearer = self._bearer
            token = self._tokens.get(scope)
        if bearer is not None and (token is None or token.expires <= time.monotonic()):
            self._fetch_token(bearer, scope, what)

    def _refused(self, what: str) -> AuthenticationError:
        cred = self.access.credential
        if cred is None:
            return AuthenticationError(
                f"{what}: {self.host} requires credentials", hint="give them with --src-creds/--dest-creds USER:PASSWORD or docker login"
            )
        return AuthenticationError(f"{what}: {self.host} refused the credentials of user {cred.username!r} (from {cred.source})")

    def _fetch_token(self, challenge: Challenge, scope: str, what: str) -> None:
        realm = challenge.params["realm"]
        send_creds = realm_may_receive(realm, self.scheme, self.host)
        query = [("service", challenge.params["service"])] if challenge.params.get("service") else []
        query += [("scope", s) for s in scope.split(" ") if s]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        cred = self.access.credential if send_creds else None
        if self.access.credential is not None and not send_creds:
            log.warning(
                "%s: token realm %s is plain HTTP on another host: asking it for an anonymous token", self.host, urlsplit(realm).netloc
            )
        auth = (cred.username, cred.password) if cred is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._http.get(url, auth=auth, timeout=self.access.settings.timeout, allow_redirects=False, stream=True)
                try:
                    status = resp.status_code
                    body = read_bounded(resp, MAX_TOKEN_BODY, f"{what}: token from {urlsplit(realm).netloc}")
                finally:
                    resp.close()
            except requests.RequestException as exc:
                err: LfsregError = tls_error(exc, what, urlsplit(realm).netloc) or request_error(
                    f"{what}: token request", exc, self.access.settings.timeout
                )
                body, status = b"", 0
            else:
                if status == 200:
                    break
                if status in (401, 403):
                    raise self._refused(what)
                err = error_for_status(
                    status,
                    f"{what}: token request to {urlsplit(realm).netloc} answered {status}",
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            if not isinstance(err, RetriableError) or (wait := self.policy.next_wait(attempt, started, err.retry_after)) is None:
                raise err
            self.policy.sleep(wait)
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n "):
            raise ProtocolError(f"{what}: the token server {urlsplit(realm).netloc} sent no usable token")
        with self._lock:
            self._tokens[scope] = _Token(value, time.monotonic() + max(lifetime, TOKEN_MARGIN * 2) - TOKEN_MARGIN)

    # -- requests -----------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """An absolute URL on this host for a path (or a ``Location`` the host sent)."""
        return urljoin(self.base + "/", path_or_url)

    def same_host(self, url: str) -> bool:
        """Whether ``url`` is on this registry host, same scheme (where credentials may go)."""
        parts = urlsplit(url)
        return parts.scheme == self.scheme and parts.netloc.lower() == self.host.lower()

    def request(
        self,
        method: str,
        path_or_url: str,
        what: str,
        *,
        scope: str,
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        allow_redirects: bool = True,
        retry: bool = True,
    ) -> requests.Response:
        """Send until the answer is in ``ok`` (returned; the caller closes a streamed one) or an error is final.

        ``404`` is returned when in ``ok``; otherwise raised like every other status, through
        :func:`lfsreg.errors.error_for_status`, with the registry's error code and message.
        ``retry=False``: the first error is final (the caller retries itself: an upload chunk
        resumes where the registry's offset says, which a blind resend would not).
        """
        url = self.url(path_or_url)
        if not self.same_host(url):
            raise ProtocolError(f"{what}: {self.host} sent us to another host ({urlsplit(url).netloc})")
        started = time.monotonic()
        attempt = 0
        challenged = False
        self._token_ahead(scope, what)
        while True:
            attempt += 1
            hdrs = {**(headers or {}), **self._auth_header(scope)}
            try:
                with self._lock:
                    self.requests += 1
                resp = self._http.request(
                    method,
                    url,
                    headers=hdrs,
                    data=body() if body is not None else None,
                    stream=True,
                    timeout=self.access.settings.timeout,
                    allow_redirects=allow_redirects,
                )
            except LfsregError:
                raise  # a body that failed verification while it was being sent
            except requests.RequestException as exc:
                err: LfsregError = tls_error(exc, what, self.host) or request_error(what, exc, self.access.settings.timeout)
                if isinstance(exc, requests.ConnectionError) and "refused" in str(exc).lower() and attempt == 1:
                    err = UnreachableError(f"{what}: cannot connect to {self.host}: connection refused")
            else:
                if resp.status_code == 401 and not challenged:
                    resp.close()
                    challenged = True
                    self._answer_challenge(resp, scope, what)
                    attempt -= 1
                    continue
                if resp.status_code in ok:
                    if not stream and method != "HEAD":  # a HEAD's Content-Length is the blob's, no body follows
                        resp._content = read_bounded(resp, 16 << 20, what)  # small answers only
                    return resp
                err = self._status_error(resp, what)
                if resp.status_code == 401:
                    raise self._refused(what)
            if not retry or not isinstance(err, RetriableError):
                raise err
            if (wait := self.policy.next_wait(attempt, started, err.retry_after)) is None:
                raise err
            log.info("%s: %s; retrying in %.1f s", what, err, wait)
            self.policy.sleep(wait)

    def _status_error(self, resp: requests.Response, what: str) -> LfsregError:
        try:
            body = read_bounded(resp, MAX_ERROR_BODY, what)
        except (LfsregError, *READ_ERRORS):
            body = b""
        finally:
            resp.close()
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            first = errors[0] if errors and isinstance(errors[0], dict) else {}
            detail = " ".join(str(first.get(k, ""))[:200] for k in ("code", "message")).strip()
        except (ValueError, AttributeError, TypeError):
            pass
        message = f"{what}: {self.host} answered {resp.status_code}" + (f" ({detail})" if detail else "")
        return error_for_status(resp.status_code, message, retry_after=parse_retry_after(resp.headers.get("Retry-After")))
