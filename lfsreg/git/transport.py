"""Smart HTTP through dulwich, and lfsreg's words for a failed git exchange.

:class:`HttpClient` is dulwich's urllib3 client with these changes: statuses dulwich folds into
text come out as :class:`HttpStatus` (with ``Retry-After``); every failure of a body read is a
:class:`GitProtocolError` (dulwich lets a read timeout through as urllib3's own error); every
request has an overall deadline (:class:`Exchange`: the per-read timeout alone lets a server
that drips a byte every few seconds hold a fetch or push for ever); and urllib3 does not try a
refused certificate again (the next handshake meets the same certificate).
:func:`transport_error` turns what dulwich and urllib3 raise into one line of lfsreg's error
tree: refused, cut, stalled, an HTTP status, or a broken protocol, naming the exchange.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from functools import cache
from typing import Any

from dulwich.client import HTTPUnauthorized, Urllib3HttpGitClient
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from .. import watchdog
from ..errors import LfsregError, ProtocolError, RetriableError, UnreachableError, error_for_status

#: Seconds a smart-HTTP request may take from start to last byte, unless the options say otherwise.
DEFAULT_DEADLINE = 300.0

__all__ = ["ExchangeTimeout", "HttpClient", "HttpStatus", "redact", "spent", "timed_out", "transport_error", "worth_retrying"]


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
    return "the fetch (git-upload-pack)"  # dulwich asks for nothing else


def _smart(content_type: str | None) -> bool:
    """Whether a refs advertisement of this type is smart HTTP's (lfsreg speaks no dumb HTTP: it cannot push)."""
    return (content_type or "").split(";")[0].strip().lower().startswith("application/x-git-")


class ExchangeTimeout(TimeoutError):
    """A smart-HTTP request got no complete answer within its deadline (``seconds``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


class Exchange:
    """The overall deadline of one smart-HTTP request, from sending it to the last byte read.

    Once :attr:`seconds` pass, the socket of the connection the request went out on is shut
    down, which wakes a blocked read or send; the client then raises :class:`ExchangeTimeout`.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._conn: Any = None
        self._done = False
        self._lock = threading.Lock()
        self._watch = watchdog.schedule(time.monotonic() + seconds, self._fire)

    def attach(self, conn: Any) -> None:
        """The request goes out on ``conn`` (a urllib3 connection; urllib3 does not retry past the deadline)."""
        with self._lock:
            self._conn = conn

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = getattr(self._conn, "sock", None)
            if sock is None:  # not connected yet: look again soon
                self._watch = watchdog.schedule(time.monotonic() + 0.05, self._fire)
                return
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown, also for an SSLSocket: wakes a blocked recv or send.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def finish(self) -> None:
        """The exchange is over: stop watching it."""
        with self._lock:
            self._done = True
            self._conn = None
            self._watch.cancel()


_current: ContextVar[Exchange] = ContextVar("lfsreg_git_exchange")  # set while HttpClient sends a request


def _certificate_refused(error: BaseException) -> bool:
    import ssl

    return any(isinstance(e, ssl.SSLCertVerificationError) for e in (error, *error.args, error.__cause__, error.__context__))


@cache
def _pool_classes() -> tuple[dict[str, type], type]:
    """urllib3 pools whose connections join the current :class:`Exchange`, and a retry that spares refused certificates."""
    import urllib3.connection
    import urllib3.connectionpool
    import urllib3.exceptions
    import urllib3.util.retry

    def joining(base: Any) -> type:
        def request(self: Any, *args: Any, **kwargs: Any) -> Any:
            _current.get().attach(self)  # only HttpClient uses these pools, always within an exchange
            return base.request(self, *args, **kwargs)

        return type(f"Deadline{base.__name__}", (base,), {"request": request})

    pools: dict[str, type] = {}
    for scheme, pool, conn in (
        ("http", urllib3.connectionpool.HTTPConnectionPool, urllib3.connection.HTTPConnection),
        ("https", urllib3.connectionpool.HTTPSConnectionPool, urllib3.connection.HTTPSConnection),
    ):
        pools[scheme] = type(f"Deadline{pool.__name__}", (pool,), {"ConnectionCls": joining(conn)})

    class Retry(urllib3.util.retry.Retry):
        """urllib3's retry of a failed connection, but not of a refused certificate, nor past the deadline."""

        def increment(
            self,
            method: Any = None,
            url: Any = None,
            response: Any = None,
            error: Any = None,
            _pool: Any = None,
            _stacktrace: Any = None,
        ) -> Any:
            if error is not None and (_certificate_refused(error) or _current.get().fired):
                raise urllib3.exceptions.MaxRetryError(_pool, url, error) from error
            return super().increment(method, url, response, error, _pool, _stacktrace)

    return pools, Retry


class HttpClient(Urllib3HttpGitClient):
    """dulwich's smart-HTTP client, raising :class:`HttpStatus` (with ``Retry-After``) for statuses it folds into text.

    It notes which exchange runs (:attr:`stage`, for messages), turns every failure of a body
    read into :class:`GitProtocolError` (dulwich lets a read timeout through as urllib3's own),
    and bounds each request by :attr:`deadline` seconds, raising :class:`ExchangeTimeout` past
    it. Call :meth:`finish` when the operation is over.
    """

    stage = "the request"
    deadline = DEFAULT_DEADLINE
    _exchange: Exchange | None = None
    #: Read the refs from protocol v0's advertisement (one GET) and fetch with v2 (one POST): set
    #: for a fetch of the tip (:func:`lfsreg.git.partial.fetch_filtered`). v2's own way is three
    #: requests (capabilities, ``ls-refs``, ``fetch``), each a ``git upload-pack`` on the server.
    refs_in_v0 = False
    v0_refs = False  # whether the last discovery did so (a failed fetch after it: the server refused v2)

    def _discover_references(self, service: bytes, base_url: str, protocol_version: int | None = None, ref_prefix: Any = None) -> Any:
        self.v0_refs = False
        if not self.refs_in_v0 or service != b"git-upload-pack" or protocol_version not in (None, 2):
            return super()._discover_references(service, base_url, protocol_version, ref_prefix)
        refs, caps, url, symrefs, peeled = super()._discover_references(service, base_url, 0, ref_prefix)
        if self.protocol_version == 0 and b"HEAD" not in refs:
            # an unborn HEAD (an empty repository): only v2 names the branch it will be
            return super()._discover_references(service, base_url, protocol_version, ref_prefix)
        if self.protocol_version != 0 or b"filter" not in caps or not any(c.startswith(b"agent=git/") for c in caps):
            # no filter: the whole tree, fetched with v0 as git would; not git's upload-pack (dulwich's
            # server advertises filter): it may not speak v2, ask it as before
            return refs, caps, url, symrefs, peeled
        self.v0_refs = True
        self.protocol_version = 2  # the fetch that follows: v2's command, with the filter and depth v0 advertised
        fetch = b"fetch=" + b" ".join(c for c in (b"shallow", b"filter") if c in caps)
        return refs, {fetch, *(c for c in caps if c.startswith((b"agent=", b"object-format=")))}, url, symrefs, peeled

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # no auth callbacks: dulwich makes a plain PoolManager or ProxyManager
        manager: Any = self.pool_manager
        pools, retry = _pool_classes()
        manager.pool_classes_by_scheme = pools
        # urllib3's default count, for connections only: a status asking to come back later
        # (Retry-After on 413/429/503) is lfsreg's loop's to wait for, not a second loop's inside it
        manager.connection_pool_kw["retries"] = retry(3, respect_retry_after_header=False)

    def finish(self) -> None:
        """Stop the deadline of the last request (its answer has been read)."""
        if self._exchange is not None:
            self._exchange.finish()
            self._exchange = None

    def _http_request(
        self, url: str, headers: dict[str, str] | None = None, data: bytes | Iterator[bytes] | None = None, raise_for_status: bool = True
    ) -> Any:
        import urllib3.exceptions  # loaded by dulwich's HTTP client anyway; never for local registries

        self.stage = _stage(url)
        self.finish()  # dulwich reads one answer before it asks the next question
        exchange = self._exchange = Exchange(self.deadline)
        token = _current.set(exchange)
        try:
            resp, read = super()._http_request(url, headers, data, raise_for_status=False)
        except GitProtocolError:
            if exchange.fired:
                raise ExchangeTimeout(exchange.seconds) from None
            raise
        finally:
            _current.reset(token)

        def guarded(*args: Any, **kwargs: Any) -> bytes:
            # urllib3 turns a socket's errors (a shut one's too) into its own; dulwich, some of those into its own
            try:
                return bytes(read(*args, **kwargs))
            except (urllib3.exceptions.HTTPError, GitProtocolError) as exc:
                if exchange.fired:
                    raise ExchangeTimeout(exchange.seconds) from None
                if isinstance(exc, GitProtocolError):
                    raise
                raise GitProtocolError(str(exc)) from exc

        if raise_for_status and resp.status not in (200, 401, 404, 407):
            retry_after = _retry_after(resp.headers.get("Retry-After"))
            resp.close()
            raise HttpStatus(resp.status, retry_after)
        if raise_for_status and resp.status == 200 and "/info/refs" in url and not _smart(resp.headers.get("Content-Type")):
            # dulwich would read it as dumb HTTP's refs list and fail on the first line (a web page, a login form)
            resp.close()
            raise GitProtocolError(f"the refs advertisement is {resp.headers.get('Content-Type') or 'untyped'}, not git's smart HTTP")
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
    for cause in chain:
        if isinstance(cause, ExchangeTimeout):
            return RetriableError(f"{label}: the git server gave no complete answer within {cause.seconds:g} s during {stage} (stalled)")
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
    # what is left is dulwich's own GitProtocolError: the server's answer made no sense
    text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
    return ProtocolError(f"{label}: the git server broke the protocol: {text}")


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` comes of a request's deadline (:class:`ExchangeTimeout` in its chain)."""
    return any(isinstance(e, ExchangeTimeout) for e in _causes(exc))


def worth_retrying(exc: LfsregError) -> bool:
    """A transient failure: a cut, reset or stalled exchange, a 5xx/429, or a refused connection."""
    return isinstance(exc, RetriableError) or (isinstance(exc, UnreachableError) and "refused" in str(exc).lower())


def spent(exc: LfsregError, attempts: int) -> LfsregError:
    """``exc`` saying that the retries are spent (same class, status and hint)."""
    text = f"{exc} (gave up after {attempts} attempts)"
    if isinstance(exc, RetriableError):
        return RetriableError(text, status=exc.status, retry_after=exc.retry_after, hint=exc.hint)
    return type(exc)(text, hint=exc.hint)
