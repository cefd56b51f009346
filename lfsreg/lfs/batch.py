"""The Git LFS batch API (git-lfs ``docs/api/batch.md``): requests, validated responses, errors.

Only this module, :mod:`lfsreg.lfs.transfer` and :mod:`lfsreg.lfs.http` talk HTTP to LFS
servers. Responses are read up to :data:`MAX_BATCH_BODY` bytes within an overall deadline and
checked field by field; anything malformed is a :class:`lfsreg.errors.ProtocolError` naming
the field, never silently ignored. Failures are classified with
:func:`lfsreg.errors.error_for_status`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from ..credentials import Credential, strip_userinfo
from ..errors import AuthenticationError, LfsregError, ProtocolError, RetriableError, error_for_status, tls_error
from ..formats.lfs_pointer import LfsObject
from .deadline import READ_ERRORS, Deadline, read_bounded, request_error

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/vnd.git-lfs+json"
EXPIRY_MARGIN = 5.0  # seconds: an action expiring sooner is re-requested (git-lfs objectExpirationToTransfer)
MAX_ERROR_BODY = 64 << 10
MAX_BATCH_BODY = 16 << 20  # 100 objects with long signed hrefs and headers stay far below this
_OID = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")


def _show(value: object) -> str:
    """A short, safe rendering of a value a server sent, for messages."""
    return repr(value[:60]) if isinstance(value, str) else type(value).__name__


class ExpiredActionError(RetriableError):
    """An action expired (or its signed href was refused): ask the batch API for a new one."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(resp: requests.Response, what: str) -> LfsregError:
    """Classify a non-2xx response with :func:`error_for_status`, adding the server's message.

    The error body is read up to :data:`MAX_ERROR_BODY` bytes; a body that is cut, malformed
    or not JSON only loses the message, never the classification.
    """
    message = ""
    try:
        body = resp.raw.read(MAX_ERROR_BODY, decode_content=True) if resp.raw is not None else b""
        obj = json.loads(body) if body else {}
        if isinstance(obj, dict):
            message = str(obj.get("message") or "")[:300]
    except (ValueError, RecursionError, *READ_ERRORS):
        message = ""
    status = resp.status_code
    detail = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    return error_for_status(status, detail, retry_after=parse_retry_after(resp.headers.get("Retry-After")))


@dataclass(frozen=True)
class Action:
    """One action of a batch response: where to send the bytes, and with which headers."""

    href: str
    header: dict[str, str] = field(repr=False)
    expires: float | None  # wall-clock epoch seconds, or None

    def expired(self, now: float | None = None) -> bool:
        """True if the action expires within :data:`EXPIRY_MARGIN` seconds."""
        return self.expires is not None and (now or time.time()) + EXPIRY_MARGIN >= self.expires

    @property
    def safe_href(self) -> str:
        """The href without query or userinfo, for messages."""
        parts = urlsplit(strip_userinfo(self.href))
        return parts._replace(query="", fragment="").geturl()


@dataclass(frozen=True)
class BatchItem:
    """The server's answer for one object."""

    obj: LfsObject
    actions: dict[str, Action]
    error: tuple[int, str] | None = None


def parse_action(obj: Any, requested_at: float, what: str) -> Action:
    """Validate one action object (href, header, expiry), from a batch response or ``git-lfs-authenticate``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("href"), str):
        raise ProtocolError(f"{what}: action without an href")
    href = obj["href"]
    try:
        scheme = urlsplit(href).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https") or any(c in href for c in "\r\n\0 "):
        raise ProtocolError(f"{what}: action href is not an http(s) URL")
    header = obj.get("header") or {}
    if not isinstance(header, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in header.items()):
        raise ProtocolError(f"{what}: action header is not a map of strings")
    if not all(_HEADER_NAME.fullmatch(k) and not _BAD_VALUE.search(v) for k, v in header.items()):
        raise ProtocolError(f"{what}: action header has a malformed name or value")
    expires: float | None = None
    expires_in = obj.get("expires_in")
    if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in != 0:
        # 0 means "not given", as in git-lfs (tq/api.go); negative means already expired.
        expires = requested_at + max(-(10**9), min(expires_in, 10**9))
    elif isinstance(obj.get("expires_at"), str) and obj["expires_at"]:
        try:
            expires = datetime.fromisoformat(obj["expires_at"].replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise ProtocolError(f"{what}: bad expires_at {obj['expires_at'][:40]!r}") from None
    return Action(href, dict(header), expires)


def parse_batch(data: Any, operation: str, requested: Sequence[LfsObject], requested_at: float, what: str) -> list[BatchItem]:
    """Validate a batch response body; return one item per requested object."""
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise ProtocolError(f"{what}: response has no 'objects' list")
    if data.get("transfer") not in (None, "basic"):
        raise ProtocolError(f"{what}: server chose transfer adapter {_show(data.get('transfer'))}; only 'basic' is supported")
    if data.get("hash_algo") not in (None, "sha256"):
        raise ProtocolError(f"{what}: server uses hash algorithm {_show(data.get('hash_algo'))}, not sha256")
    wanted = {o.oid: o for o in requested}
    items: dict[str, BatchItem] = {}
    for i, entry in enumerate(data["objects"]):
        where = f"{what}: objects[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("oid"), str) or not _OID.fullmatch(entry["oid"]):
            raise ProtocolError(f"{where}: missing or malformed oid")
        obj = wanted.get(entry["oid"])
        if obj is None:
            raise ProtocolError(f"{where}: the server answered for an object that was not requested")
        error = entry.get("error")
        if error is not None:
            code = error.get("code", 0) if isinstance(error, dict) else None
            if not isinstance(code, int) or isinstance(code, bool):
                raise ProtocolError(f"{where}: malformed error (its code must be an integer)")
            message = error.get("message")
            items[obj.oid] = BatchItem(obj, {}, (code, message[:300] if isinstance(message, str) else ""))
            continue
        raw_actions = entry.get("actions") or {}
        if not isinstance(raw_actions, dict):
            raise ProtocolError(f"{where}: 'actions' is not an object")
        actions = {
            name: parse_action(a, requested_at, f"{where} {name}")
            for name, a in raw_actions.items()
            if name in ("download", "upload", "verify")
        }
        if operation == "download" and "download" not in actions:
            raise ProtocolError(f"{where}: neither a download action nor an error")
        items[obj.oid] = BatchItem(obj, actions)
    missing = [o for o in requested if o.oid not in items]
    if missing:
        raise ProtocolError(f"{what}: the server did not answer for {len(missing)} object(s), e.g. sha256:{missing[0].oid}")
    return [items[o.oid] for o in requested]


def decode_batch(raw: bytes, operation: str, requested: Sequence[LfsObject], requested_at: float, what: str) -> list[BatchItem]:
    """Parse and validate a batch response body (:func:`parse_batch`).

    :class:`ProtocolError` on bad input; :class:`RetriableError` for a body that stops short
    (a connection cut where the response had no length to check it against).
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The text stops short (an empty 200 too; or inside a string, which the parser reports
        # where the string began): a cut connection, not a bad server.
        if exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise RetriableError(f"{what}: the response ended early") from None
        raise ProtocolError(f"{what}: the response is not JSON") from None
    except (ValueError, RecursionError):
        raise ProtocolError(f"{what}: the response is not JSON") from None
    return parse_batch(data, operation, requested, requested_at, what)


#: ``(operation, refresh) -> (endpoint, headers)``: per-operation authentication of the batch API,
#: e.g. the ``href`` and ``header`` that ``git-lfs-authenticate`` returns over SSH (``refresh``:
#: the last headers were refused, get new ones).
HeaderSource = Callable[[str, bool], tuple[str, dict[str, str]]]


class BatchClient:
    """Calls ``<endpoint>/objects/batch`` with HTTP Basic credentials for the endpoint's host only.

    With a ``header_source`` the endpoint and headers come from it instead (no Basic
    credentials are sent); a 401 asks it once for fresh headers.
    """

    def __init__(
        self,
        endpoint: str,
        session: requests.Session,
        credentials: Sequence[Credential],
        *,
        timeout: float = 60.0,
        deadline: float = 300.0,
        header_source: HeaderSource | None = None,
    ) -> None:
        self.endpoint = strip_userinfo(endpoint).rstrip("/")
        self._session = session
        self._credentials = list(credentials)
        self._current = 0
        self._timeout = timeout
        self._deadline = deadline
        self._header_source = header_source

    @property
    def label(self) -> str:
        """The endpoint, safe to show."""
        return self.endpoint

    def batch(self, operation: str, objects: Sequence[LfsObject], *, ref: str | None = None) -> list[BatchItem]:
        """One batch call (at most 100 objects).

        Raises:
            RetriableError: a 5xx/429, a cut connection, or no complete answer within the deadline.
            AuthenticationError, PermissionDeniedError, NotFoundError: as the status says.
            ProtocolError: a malformed or oversized response.
        """
        body: dict[str, object] = {
            "operation": operation,
            "transfers": ["basic"],
            "objects": [{"oid": o.oid, "size": o.size} for o in objects],
            "hash_algo": "sha256",
        }
        if ref:
            body["ref"] = {"name": ref}
        url = self.endpoint + "/objects/batch"
        headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE, "Accept-Encoding": "identity"}
        what = f"LFS batch {operation} at {self.endpoint}"
        refreshed: bool | None = None if self._header_source is None else False
        while True:
            cred = self._credentials[self._current] if self._current < len(self._credentials) else None
            extra: dict[str, str] = {}
            if self._header_source is not None:
                endpoint, extra = self._header_source(operation, bool(refreshed))
                url, cred = strip_userinfo(endpoint).rstrip("/") + "/objects/batch", None
            requested_at = time.time()
            with Deadline(self._deadline, what) as deadline:
                try:
                    resp = self._session.post(
                        url,
                        data=json.dumps(body),
                        headers={**headers, **extra},
                        timeout=self._timeout,
                        auth=(cred.username, cred.password) if cred else None,
                        allow_redirects=True,
                        stream=True,
                    )
                except requests.RequestException as exc:  # no answer: a refused certificate is final
                    tls = tls_error(exc, what, urlsplit(url).netloc.rsplit("@", 1)[-1])
                    raise (tls or request_error(what, exc, self._timeout)) from None
                with resp:
                    deadline.watch(resp)
                    if resp.status_code == 401 and refreshed is False:
                        log.debug("%s: 401 with the authenticated headers; asking for fresh ones", what)
                        refreshed = True
                        continue
                    if resp.status_code == 401 and refreshed is None and self._current < len(self._credentials):
                        log.debug("%s: 401 with %s credentials; trying the next source", what, cred.source if cred else "no")
                        self._current += 1
                        continue
                    if resp.status_code != 200:
                        err = error_from_response(resp, what)
                        if isinstance(err, AuthenticationError) and refreshed is not None:
                            err.hint = "the LFS server refused the credentials the SSH server's git-lfs-authenticate handed out"
                        elif isinstance(err, AuthenticationError):
                            err.hint = "set LFSREG_USERNAME and LFSREG_PASSWORD (or LFSREG_TOKEN), or add the host to ~/.netrc"
                        raise err
                    raw = read_bounded(resp, MAX_BATCH_BODY, what, deadline)
            return decode_batch(raw, operation, objects, requested_at, what)
