"""Smart HTTP through dulwich, and lfsreg's words for a failed git exchange.

:class:`HttpClient` is dulwich's urllib3 client with two changes: statuses dulwich folds into
text come out as :class:`HttpStatus` (with ``Retry-After``), and every failure of a body read
is a :class:`GitProtocolError` (dulwich lets a read timeout through as urllib3's own error).
:func:`transport_error` turns what dulwich and urllib3 raise into one line of lfsreg's error
tree: refused, cut, stalled, an HTTP status, or a broken protocol, naming the exchange.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Any

from dulwich.client import HTTPUnauthorized, Urllib3HttpGitClient
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from ..errors import LfsregError, ProtocolError, RetriableError, UnreachableError, error_for_status

__all__ = ["HttpClient", "HttpStatus", "redact", "spent", "transport_error", "worth_retrying"]


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class HttpStatus(Exception):
    """A smart-HTTP request answered with a status dulwich has no exception for."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from git servers, and a plain retry serves


def _stage(url: str) -> str:
    """Which smart-HTTP exchange ``url`` is, in words."""
    if "/info/refs" in url:
        return "the refs advertisement"
    if url.rstrip("/").endswith("git-receive-pack"):
        return "the push (git-receive-pack)"
    if url.rstrip("/").endswith("git-upload-pack"):
        return "the fetch (git-upload-pack)"
    return "the request"


class HttpClient(Urllib3HttpGitClient):
    """dulwich's smart-HTTP client, raising :class:`HttpStatus` (with ``Retry-After``) for statuses it folds into text.

    It notes which exchange runs (:attr:`stage`, for messages), and turns every failure of a
    body read into :class:`GitProtocolError` (dulwich lets a read timeout through as urllib3's own).
    """

    stage = "the request"

    def _http_request(
        self, url: str, headers: dict[str, str] | None = None, data: bytes | Iterator[bytes] | None = None, raise_for_status: bool = True
    ) -> Any:
        import urllib3.exceptions  # loaded by dulwich's HTTP client anyway; never for local registries

        self.stage = _stage(url)
        resp, read = super()._http_request(url, headers, data, raise_for_status=False)

        def guarded(*args: Any, **kwargs: Any) -> bytes:
            try:
                return bytes(read(*args, **kwargs))
            except urllib3.exceptions.HTTPError as exc:
                raise GitProtocolError(str(exc)) from exc

        if raise_for_status and resp.status not in (200, 401, 404, 407):
            retry_after = _retry_after(resp.headers.get("Retry-After"))
            resp.close()
            raise HttpStatus(resp.status, retry_after)
        if raise_for_status and resp.status == 404:
            raise NotGitRepository
        if raise_for_status and resp.status in (401, 407):
            raise HTTPUnauthorized(resp.headers.get("WWW-Authenticate"), url)
        return resp, guarded


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transport_error(label: str, exc: Exception, secrets: Sequence[str], stage: str, timeout: float | None) -> LfsregError:
    """The error for a failed git exchange that is not about credentials, a missing repository or TLS.

    Its message is lfsreg's own words for what happened (refused, cut, stalled), never the HTTP
    library's text (which names pools and retries, and may repeat the URL).
    """
    if isinstance(exc, HttpStatus):
        return error_for_status(exc.status, f"{label}: the git server answered HTTP {exc.status}", retry_after=exc.retry_after)
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, LfsregError):  # dulwich wraps what lfsreg's SSH channel raised (a refusal, a cut)
            return cause
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return UnreachableError(f"{label}: cannot connect: connection refused", hint="check the address, and that the server is running")
    if "ConnectTimeoutError" in names:
        return RetriableError(f"{label}: cannot connect: no answer within {timeout or 0:g} s")
    if "NameResolutionError" in names or any(isinstance(e, socket.gaierror) for e in chain):
        return UnreachableError(f"{label}: cannot connect: unknown host", hint="check the host name in the URL")
    if "ReadTimeoutError" in names or any(isinstance(e, TimeoutError) for e in chain):
        return RetriableError(f"{label}: the git server sent nothing for {timeout or 0:g} s during {stage} (stalled)")
    if isinstance(exc, (HangupException, ConnectionError)) or exc.__cause__ is not None:
        return RetriableError(f"{label}: the connection to the git server was cut during {stage}")
    text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
    if isinstance(exc, GitProtocolError):
        return ProtocolError(f"{label}: the git server broke the protocol: {text}")
    return RetriableError(f"{label}: git transport failed during {stage}: {text}")


def worth_retrying(exc: LfsregError) -> bool:
    """A transient failure: a cut, reset or stalled exchange, a 5xx/429, or a refused connection."""
    return isinstance(exc, RetriableError) or (isinstance(exc, UnreachableError) and "refused" in str(exc).lower())


def spent(exc: LfsregError, attempts: int) -> LfsregError:
    """``exc`` saying that the retries are spent (same class, status and hint)."""
    text = f"{exc} (gave up after {attempts} attempts)"
    if isinstance(exc, RetriableError):
        return RetriableError(text, status=exc.status, retry_after=exc.retry_after, hint=exc.hint)
    return type(exc)(text, hint=exc.hint)
