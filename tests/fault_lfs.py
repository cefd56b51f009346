"""A fault-injecting Git LFS server for tests (stdlib only).

It speaks the Git LFS batch API and the ``basic`` transfer adapter as documented by git-lfs
(``docs/api/batch.md``, ``basic-transfers.md``, ``authentication.md``) and, like git-lfs's own
``t/cmd/lfstest-gitserver.go``, can misbehave on purpose -- but the misbehaviour is scripted per
test, per object and per operation, instead of being keyed on magic file contents::

    with FaultLfsServer(credentials=("alice", "s3cret")) as server:
        oid = server.add_object(b"layer bytes")
        server.script(oid, "download", [Fault.status(503, retry_after=0), Fault.cut(4), Fault.ok()])
        client = MyClient(server.endpoint("team/repo.git"), auth=server.credentials)
        ...
        assert server.attempts(oid, "download") == 3
        assert server.ranges(oid) == [None, None, "bytes=4-10"]

Routes (one server, ``http://127.0.0.1:PORT``):

* ``POST /<repo>/info/lfs/objects/batch`` -- the batch API; :meth:`FaultLfsServer.endpoint`
  gives ``http://127.0.0.1:PORT/<repo>/info/lfs``. ``<repo>`` may contain slashes.
* ``GET /storage/<oid>`` (download, honours ``Range: bytes=N-`` / ``bytes=N-M``) and
  ``PUT /storage/<oid>`` (upload, streamed to disk and checked against the oid and size).
* ``POST /verify`` -- the ``verify`` action (``{"oid": ..., "size": ...}``).
* ``POST /<repo>/info/lfs/locks/verify`` and ``GET /<repo>/info/lfs/locks`` answer "no locks"
  so that a stock ``git push`` does not complain.

Operations, as used by :meth:`FaultLfsServer.script` and the counters:

* ``"batch"`` -- an object's entry in a batch response (faults: ok, object_error, expired);
* ``"download"`` / ``"upload"`` / ``"verify"`` -- requests to the action hrefs.

Whole batch calls are scripted separately with :meth:`FaultLfsServer.script_batch`.

Every action carries its own ``header`` (``Authorization: RemoteAuth <token>``); the token is
bound to one oid and one operation. The server checks it on the storage and verify routes
(unless ``action_auth=False``), so a client that sends its Basic credentials there instead
gets 401. Objects live in a temporary directory (uploads are streamed, never held in memory).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import unquote, urlsplit

__all__ = ["LFS_MEDIA_TYPE", "OPERATIONS", "Fault", "FaultKind", "FaultLfsServer", "RecordedRequest"]

#: Media type of batch / verify request and response bodies.
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
#: What :meth:`FaultLfsServer.script` accepts as ``operation``.
OPERATIONS = ("batch", "download", "upload", "verify")
_CHUNK = 64 * 1024
_MAX_JSON_BODY = 16 * 1024 * 1024
_OID_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_BATCH_RE = re.compile(r"\A/(?P<repo>.+?)/info/lfs/objects/batch\Z")
_LOCKS_RE = re.compile(r"\A/(?P<repo>.+?)/info/lfs/locks(?P<verify>/verify)?\Z")
_STORAGE_RE = re.compile(r"\A/storage/(?P<oid>[^/]+)\Z")
_RANGE_RE = re.compile(r"\Abytes=(?P<start>\d+)-(?P<end>\d*)\Z")


class FaultKind(str, Enum):
    """What a :class:`Fault` does."""

    OK = "ok"
    STATUS = "status"
    CUT = "cut"
    STALL = "stall"
    IGNORE_RANGE = "ignore_range"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    CORRUPT = "corrupt"
    EXPIRED = "expired"
    OBJECT_ERROR = "object_error"
    RAW = "raw"


# Which kinds make sense where; FaultLfsServer.script()/script_batch() enforce it.
_ALLOWED: dict[str, frozenset[FaultKind]] = {
    "batch-call": frozenset({FaultKind.OK, FaultKind.STATUS, FaultKind.CUT, FaultKind.RAW}),
    "batch": frozenset({FaultKind.OK, FaultKind.OBJECT_ERROR, FaultKind.EXPIRED}),
    "download": frozenset(
        {
            FaultKind.OK,
            FaultKind.STATUS,
            FaultKind.CUT,
            FaultKind.STALL,
            FaultKind.IGNORE_RANGE,
            FaultKind.RANGE_NOT_SATISFIABLE,
            FaultKind.CORRUPT,
            FaultKind.RAW,
        }
    ),
    "upload": frozenset({FaultKind.OK, FaultKind.STATUS, FaultKind.CUT, FaultKind.RAW}),
    "verify": frozenset({FaultKind.OK, FaultKind.STATUS, FaultKind.CUT, FaultKind.RAW}),
}


def _http_date(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return email.utils.format_datetime(when.astimezone(timezone.utc), usegmt=True)


def _rfc3339(when: datetime) -> str:
    """Uppercase RFC 3339 with second precision, as batch.md asks for ``expires_at``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Fault:
    """One scripted behaviour; build them with the class methods, not the constructor.

    Every fault may carry a ``delay`` (seconds slept before answering). Where each kind applies:

    ============================  ==========================================================
    kind                          applies to
    ============================  ==========================================================
    ``ok`` / ``slow``             everywhere: behave normally (after ``delay``)
    ``status``                    batch calls, download, upload, verify
    ``cut``                       download: headers with the full Content-Length, then
                                  ``after_bytes`` body bytes, then the socket is closed;
                                  upload: read ``after_bytes`` of the body, then close without
                                  answering; batch call / verify: close without answering
    ``stall``                     download: ``after_bytes`` bytes, pause ``pause`` s, the rest
    ``ignore_range``              download: answer 200 with the whole body despite ``Range``
    ``range_not_satisfiable``     download: answer 416 (``Content-Range: bytes */size``)
    ``corrupt``                   download: right length, first body byte flipped
    ``raw``                       batch calls, download, upload, verify: any status/body
    ``object_error``              ``"batch"`` (per object): ``error {code, message}``
    ``expired``                   ``"batch"`` (per object): an expired action, whose token the
                                  hrefs reject (``reject_status``) until re-requested
    ============================  ==========================================================
    """

    kind: FaultKind
    code: int | None = None
    message: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    after_bytes: int = 0
    pause: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expiry: Literal["expires_in", "expires_at", "hidden"] = "expires_in"
    expires_in: int = 0
    reject_status: int | None = 401

    @classmethod
    def ok(cls, *, delay: float = 0.0) -> Fault:
        """Behave normally (a placeholder to fault only the Nth attempt)."""
        return cls(FaultKind.OK, delay=delay)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Behave normally, but only after ``seconds`` (for timeout tests)."""
        return cls(FaultKind.OK, delay=seconds)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: str | float | datetime | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Answer ``code`` with an LFS JSON error body ``{"message", "request_id"}``.

        ``retry_after`` becomes a ``Retry-After`` header: a number is sent as whole seconds,
        a ``datetime`` as an HTTP date, a string verbatim. A 401 on a batch call also carries
        ``LFS-Authenticate: Basic realm="Git LFS"``.
        """
        if isinstance(retry_after, datetime):
            retry_after = _http_date(retry_after)
        elif isinstance(retry_after, (int, float)):
            retry_after = str(int(retry_after))
        return cls(
            FaultKind.STATUS,
            code=code,
            message=message,
            retry_after=retry_after,
            headers=tuple((headers or {}).items()),
            delay=delay,
        )

    @classmethod
    def cut(cls, after_bytes: int = 0, *, delay: float = 0.0) -> Fault:
        """Close the connection after ``after_bytes`` body bytes (see the class table)."""
        return cls(FaultKind.CUT, after_bytes=after_bytes, delay=delay)

    @classmethod
    def stall(cls, after_bytes: int, seconds: float) -> Fault:
        """Download: send ``after_bytes`` bytes, pause ``seconds``, then send the rest."""
        return cls(FaultKind.STALL, after_bytes=after_bytes, pause=seconds)

    @classmethod
    def ignore_range(cls) -> Fault:
        """Download: answer 200 with the full body even when ``Range`` was sent."""
        return cls(FaultKind.IGNORE_RANGE)

    @classmethod
    def range_not_satisfiable(cls) -> Fault:
        """Download: answer 416 whatever was asked for."""
        return cls(FaultKind.RANGE_NOT_SATISFIABLE)

    @classmethod
    def corrupt(cls) -> Fault:
        """Download: the right status and length, with the first body byte flipped."""
        return cls(FaultKind.CORRUPT)

    @classmethod
    def object_error(cls, code: int, message: str | None = None) -> Fault:
        """Batch (per object): ``"error": {"code": code, "message": message}`` in a 200 response."""
        return cls(FaultKind.OBJECT_ERROR, code=code, message=message or f"scripted object error {code}")

    @classmethod
    def expired(
        cls,
        how: Literal["expires_in", "expires_at", "hidden"] = "expires_in",
        *,
        expires_in: int = 0,
        reject_status: int | None = 401,
    ) -> Fault:
        """Batch (per object): hand out actions that have already expired.

        ``how="expires_in"`` sends ``expires_in: <expires_in>`` (default 0);
        ``"expires_at"`` sends an ``expires_at`` one hour in the past; ``"hidden"`` advertises
        a normal lifetime but the token is dead anyway (a server-side revocation). In every
        case the hrefs answer ``reject_status`` (401 by default, 403 possible, ``None`` to
        accept the stale token) with the message "action expired" when the token is used;
        the next batch call hands out a fresh, working token.

        Note: stock git-lfs (3.3.0, Go ``omitempty``) reads ``expires_in: 0`` as "no expiry"
        and uses the href (which then answers 401); a negative ``expires_in``, one under 5 s,
        or a past ``expires_at`` makes it re-request the batch before any transfer.
        """
        return cls(FaultKind.EXPIRED, expiry=how, expires_in=expires_in, reject_status=reject_status)

    @classmethod
    def raw(
        cls,
        code: int,
        body: bytes = b"",
        *,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Answer exactly ``code`` with ``body`` (e.g. a batch 200 that is not JSON)."""
        hdrs = {"Content-Type": content_type, **(headers or {})}
        return cls(FaultKind.RAW, code=code, body=body, headers=tuple(hdrs.items()), delay=delay)


@dataclass
class RecordedRequest:
    """One request the server received, as tests see it in :attr:`FaultLfsServer.requests`.

    ``headers`` has lower-case names; ``Authorization`` (and ``Proxy-Authorization``) values
    are redacted to ``"<scheme> sha256:<16 hex>"`` (see
    :meth:`FaultLfsServer.redact_authorization`), so the log never holds a secret but tests
    can still tell which credentials were sent. ``status`` is the status line sent (``None`` if
    the connection was closed without one); ``cut`` tells that the connection was closed on
    purpose; ``bytes_sent`` / ``bytes_received`` count body bytes.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    operation: str | None = None
    repo: str | None = None
    oid: str | None = None
    status: int | None = None
    fault: FaultKind | None = None
    cut: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0
    time: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """The (redacted, for credentials) value of header ``name``, case-insensitively."""
        return self.headers.get(name.lower())

    @property
    def auth_scheme(self) -> str | None:
        """``"Basic"``, ``"RemoteAuth"``... of the Authorization header, or ``None``."""
        value = self.header("Authorization")
        return value.split(" ", 1)[0] if value else None


@dataclass
class _Ticket:
    """What an action token allows."""

    oid: str
    operation: str
    size: int
    repo: str
    expired: bool = False
    reject_status: int | None = 401


class _Cut(Exception):
    """Raised inside a handler to close the connection without (finishing) a response."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    lfs: FaultLfsServer


class FaultLfsServer:
    """A Git LFS server on ``127.0.0.1:<free port>`` whose failures tests script.

    Use it as a context manager (or :meth:`start` / :meth:`stop`). It is thread-safe; scripts
    and counters may be changed and read while a client runs.

    Args:
        credentials: ``(user, password)`` required as HTTP Basic on the batch (and locks)
            endpoint; ``None`` leaves it open.
        action_auth: Whether the storage and verify routes require the action's
            ``Authorization: RemoteAuth <token>`` header (default). With ``False`` a request
            without a token is accepted, but a known token that expired is still rejected.
        read_only: Repositories for which uploads are refused (see :meth:`set_read_only`).
        read_only_mode: ``"batch"`` (the batch call answers 403) or ``"object"`` (a 200 with a
            per-object 403 error) for the repositories in ``read_only``.
        action_expires_in: ``expires_in`` of normal actions, in seconds.
        strict_media_types: Answer 406 when ``Accept`` lacks ``application/vnd.git-lfs+json``
            and 415 when ``Content-Type`` is not it (parameters such as ``charset`` are
            allowed), on the batch and verify routes.
        storage_dir: Where objects are kept; a fresh temporary directory (removed by
            :meth:`stop`) by default.

    """

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        action_auth: bool = True,
        read_only: Iterable[str] = (),
        read_only_mode: Literal["batch", "object"] = "batch",
        action_expires_in: int = 3600,
        strict_media_types: bool = True,
        storage_dir: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.credentials = credentials
        self.action_auth = action_auth
        self.action_expires_in = action_expires_in
        self.strict_media_types = strict_media_types
        self._lock = threading.RLock()
        self._read_only: dict[str, str] = dict.fromkeys(read_only, read_only_mode)
        self._scripts: dict[tuple[str, str], deque[Fault]] = {}
        self._batch_scripts: dict[str | None, deque[Fault]] = {}
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._tickets: dict[str, _Ticket] = {}
        self._requests: list[RecordedRequest] = []
        self._batch_bodies: list[Any] = []
        self._batch_records: list[tuple[RecordedRequest, Any]] = []
        self._batch_calls = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._own_storage = storage_dir is None
        self.storage = Path(storage_dir) if storage_dir is not None else Path(tempfile.mkdtemp(prefix="fault-lfs-"))
        (self.storage / "objects").mkdir(parents=True, exist_ok=True)
        (self.storage / "incoming").mkdir(parents=True, exist_ok=True)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> FaultLfsServer:
        """Bind to a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        if self.ssl_context is not None:  # HTTPS: the listening socket hands out TLS connections
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        httpd.lfs = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, wake delayed handlers, remove own storage."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> FaultLfsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("FaultLfsServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with an ``ssl_context``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def endpoint(self, repo: str = "repo", *, userinfo: str | None = None) -> str:
        """The LFS server URL of ``repo``: ``http://127.0.0.1:PORT/<repo>/info/lfs``.

        ``userinfo`` (``"user:password"``) is embedded in the URL when given, as in
        ``lfs.url = http://user:password@host/...``.
        """
        auth = f"{userinfo}@" if userinfo else ""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{repo.strip('/')}/info/lfs"

    def batch_url(self, repo: str = "repo") -> str:
        """``<endpoint>/objects/batch``."""
        return self.endpoint(repo) + "/objects/batch"

    def storage_url(self, oid: str) -> str:
        """The href of ``oid``'s download and upload actions."""
        return f"{self.base_url}/storage/{oid}"

    @property
    def verify_url(self) -> str:
        """The href of every verify action."""
        return f"{self.base_url}/verify"

    # -- objects ---------------------------------------------------------------------------------
    def object_path(self, oid: str) -> Path:
        """Where ``oid`` is (or would be) stored: ``objects/<oid[:2]>/<oid[2:4]>/<oid>``."""
        if not _OID_RE.match(oid):
            raise ValueError(f"not a sha256 oid: {oid!r}")
        return self.storage / "objects" / oid[:2] / oid[2:4] / oid

    def has_object(self, oid: str) -> bool:
        """Whether ``oid`` is stored."""
        return self.object_path(oid).is_file()

    def object_size(self, oid: str) -> int | None:
        """Size of a stored object, or ``None``."""
        try:
            return self.object_path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def read_object(self, oid: str) -> bytes:
        """The bytes of a stored object (small objects only)."""
        return self.object_path(oid).read_bytes()

    def add_object(self, data: bytes) -> str:
        """Store ``data`` as if it had been uploaded; returns its oid."""
        oid = hashlib.sha256(data).hexdigest()
        tmp = self._incoming()
        tmp.write_bytes(data)
        self._commit_object(tmp, oid)
        return oid

    def add_object_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content (streamed); returns its oid."""
        digest = hashlib.sha256()
        tmp = self._incoming()
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        oid = digest.hexdigest()
        self._commit_object(tmp, oid)
        return oid

    def remove_object(self, oid: str) -> None:
        """Forget a stored object (no error when absent)."""
        self.object_path(oid).unlink(missing_ok=True)

    def _incoming(self) -> Path:
        return self.storage / "incoming" / uuid.uuid4().hex

    def _commit_object(self, tmp: Path, oid: str) -> None:
        dest = self.object_path(oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)

    # -- scripting -------------------------------------------------------------------------------
    def script(self, oid: str, operation: str, faults: Iterable[Fault]) -> None:
        """Append ``faults`` for ``oid``'s ``operation``; each request consumes the next one.

        ``operation`` is ``"batch"`` (the object's entry in batch responses), ``"download"``,
        ``"upload"`` or ``"verify"``. Once the script is used up the server behaves normally.

        Raises:
            ValueError: For an unknown operation or a fault kind that does not apply to it.

        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}, not {operation!r}")
        faults = list(faults)
        self._check_kinds(operation, faults)
        with self._lock:
            self._scripts.setdefault((oid, operation), deque()).extend(faults)

    def script_batch(self, faults: Iterable[Fault], *, operation: Literal["download", "upload"] | None = None) -> None:
        """Append faults for whole batch calls, consumed one per (authorised, valid) call.

        With ``operation`` the faults only apply to batch calls for that operation (and are
        used before the operation-independent ones).
        """
        faults = list(faults)
        self._check_kinds("batch-call", faults)
        with self._lock:
            self._batch_scripts.setdefault(operation, deque()).extend(faults)

    @staticmethod
    def _check_kinds(where: str, faults: list[Fault]) -> None:
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected a Fault, got {fault!r}")
            if fault.kind not in _ALLOWED[where]:
                raise ValueError(f"fault {fault.kind.value!r} does not apply to {where!r}")

    def pending(self, oid: str | None = None, operation: str | None = None) -> list[Fault]:
        """Scripted faults not consumed yet (all of them, or for one oid and/or operation).

        Whole-batch faults are listed under ``oid=None, operation="batch-call"``.
        """
        with self._lock:
            out: list[Fault] = []
            for (o, op), queue in self._scripts.items():
                if (oid is None or o == oid) and (operation is None or op == operation):
                    out.extend(queue)
            if oid is None and operation in (None, "batch-call"):
                for queue in self._batch_scripts.values():
                    out.extend(queue)
            return out

    def set_read_only(self, repo: str, mode: Literal["batch", "object"] | None = "batch") -> None:
        """Refuse uploads to ``repo``: the batch call answers 403 (``"batch"``) or each object
        gets ``error {code: 403}`` (``"object"``); ``None`` makes it writable again. Uploads
        with tokens issued for the repo before are refused with 403 as well."""
        with self._lock:
            if mode is None:
                self._read_only.pop(repo.strip("/"), None)
            else:
                self._read_only[repo.strip("/")] = mode

    def expire_actions(self, oid: str | None = None, *, reject_status: int = 401) -> int:
        """Revoke every action token handed out so far (for ``oid``, or all); returns how many.

        The hrefs then answer ``reject_status`` "action expired" to those tokens, until the
        client asks the batch API again.
        """
        with self._lock:
            n = 0
            for ticket in self._tickets.values():
                if oid is None or ticket.oid == oid:
                    ticket.expired, ticket.reject_status = True, reject_status
                    n += 1
            return n

    def _next_fault(self, oid: str, operation: str) -> Fault:
        with self._lock:
            queue = self._scripts.get((oid, operation))
            return queue.popleft() if queue else Fault.ok()

    def _next_batch_fault(self, operation: str) -> Fault:
        with self._lock:
            for key in (operation, None):
                queue = self._batch_scripts.get(key)
                if queue:
                    return queue.popleft()
            return Fault.ok()

    # -- observations ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, oid: str | None = None, operation: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by oid and/or operation (``"batch"``, ``"download"``,
        ``"upload"``, ``"verify"``, ``"locks"``; ``None`` for any).

        A batch call is listed for every oid it names.
        """
        out = []
        with self._lock:
            bodies = {id(r): b for r, b in self._batch_records}
            for rec in self._requests:
                if operation is not None and rec.operation != operation:
                    continue
                if oid is not None:
                    if rec.operation == "batch":
                        if oid not in _oids_of(bodies.get(id(rec))):
                            continue
                    elif rec.oid != oid:
                        continue
                out.append(rec)
        return out

    @property
    def batch_calls(self) -> int:
        """How many batch requests arrived (including rejected ones)."""
        with self._lock:
            return self._batch_calls

    @property
    def batch_bodies(self) -> list[Any]:
        """The parsed JSON body of every batch request that had one, oldest first."""
        with self._lock:
            return list(self._batch_bodies)

    def attempts(self, oid: str, operation: str) -> int:
        """How many times ``oid`` was asked for: batch entries (authorised, valid calls) for
        ``"batch"``, requests to the href for ``"download"``/``"upload"``/``"verify"``."""
        with self._lock:
            return self._attempts[(oid, operation)]

    def ranges(self, oid: str) -> list[str | None]:
        """The ``Range`` header of every download request for ``oid`` (``None`` when absent)."""
        return [r.header("Range") for r in self.requests_for(oid, "download")]

    def resume_offsets(self, oid: str) -> list[int]:
        """The start byte of every ranged download request for ``oid``."""
        out = []
        for value in self.ranges(oid):
            m = _RANGE_RE.match(value or "")
            if m:
                out.append(int(m["start"]))
        return out

    def reset_log(self) -> None:
        """Forget recorded requests, bodies and counters (scripts and objects stay)."""
        with self._lock:
            self._requests.clear()
            self._batch_records.clear()
            self._batch_bodies.clear()
            self._attempts.clear()
            self._batch_calls = 0

    @staticmethod
    def redact_authorization(value: str) -> str:
        """``"Basic dXNlcjpwdw=="`` -> ``"Basic sha256:<first 16 hex of sha256(credentials)>"``."""
        scheme, _, secret = value.strip().partition(" ")
        return f"{scheme} sha256:{hashlib.sha256(secret.strip().encode()).hexdigest()[:16]}"

    @classmethod
    def redacted_basic(cls, user: str, password: str) -> str:
        """How Basic credentials ``user``/``password`` appear in :attr:`requests`."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return cls.redact_authorization(f"Basic {token}")

    # -- internals used by the handler -----------------------------------------------------------
    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _issue(self, oid: str, operation: str, size: int, repo: str, fault: Fault) -> dict[str, Any]:
        token = secrets.token_urlsafe(18)
        expired = fault.kind is FaultKind.EXPIRED
        with self._lock:
            self._tickets[token] = _Ticket(oid, operation, size, repo, expired, fault.reject_status if expired else None)
        href = self.verify_url if operation == "verify" else self.storage_url(oid)
        action: dict[str, Any] = {"href": href, "header": {"Authorization": f"RemoteAuth {token}"}}
        if not expired or fault.expiry == "hidden":
            action["expires_in"] = self.action_expires_in
        elif fault.expiry == "expires_in":
            action["expires_in"] = fault.expires_in
        else:
            action["expires_at"] = _rfc3339(datetime.now(timezone.utc) - timedelta(hours=1))
        return action

    def _ticket(self, token: str) -> _Ticket | None:
        with self._lock:
            return self._tickets.get(token)


def _oids_of(body: Any) -> set[str]:
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        return set()
    return {o.get("oid") for o in body["objects"] if isinstance(o, dict) and isinstance(o.get("oid"), str)}


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FaultLfs/1.0"
    timeout = 30  # idle keep-alive connections give up eventually

    rec: RecordedRequest
    _body_left: int | None  # bytes of a Content-Length body not read yet; None for chunked
    _chunked_done: bool

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def lfs(self) -> FaultLfsServer:
        return cast("_HTTPServer", self.server).lfs

    def setup(self) -> None:
        super().setup()
        with self.lfs._lock:
            self.lfs._connections.add(self.connection)

    def finish(self) -> None:
        with self.lfs._lock:
            self.lfs._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in ("authorization", "proxy-authorization"):
                value = FaultLfsServer.redact_authorization(value)
            headers[key] = value if key not in headers else f"{headers[key]}, {value}"
        self.rec = RecordedRequest(self.command, path, url.query, headers)
        self.lfs._record(self.rec)
        self._start_body()
        try:
            if m := _BATCH_RE.match(path):
                self.rec.operation, self.rec.repo = "batch", m["repo"]
                if self._method_is("POST"):
                    self._batch(m["repo"])
            elif m := _LOCKS_RE.match(path):
                self.rec.operation, self.rec.repo = "locks", m["repo"]
                self._locks(m["repo"], bool(m["verify"]))
            elif m := _STORAGE_RE.match(path):
                self.rec.oid = m["oid"]
                if self.command == "GET":
                    self.rec.operation = "download"
                    self._download(m["oid"])
                elif self._method_is("PUT"):
                    self.rec.operation = "upload"
                    self._upload(m["oid"])
            elif path == "/verify":
                self.rec.operation = "verify"
                if self._method_is("POST"):
                    self._verify()
            else:
                self._error(404, f"no route for {self.command} {path}")
        except _Cut:
            self._close_now()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _method_is(self, method: str) -> bool:
        if self.command == method:
            return True
        self._error(405, f"{self.command} not allowed here", headers={"Allow": method})
        return False

    # -- request bodies --------------------------------------------------------------------------
    def _start_body(self) -> None:
        self._chunked_done = False
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._body_left = None
        else:
            try:
                self._body_left = max(0, int(self.headers.get("Content-Length") or 0))
            except ValueError:
                self._body_left = 0
                self.close_connection = True

    def _has_length(self) -> bool:
        return self._body_left is None or "content-length" in self.rec.headers

    def _body(self, limit: int | None = None) -> Iterator[bytes]:
        """Yield the request body (at most ``limit`` more bytes when given)."""
        budget = limit
        if self._body_left is not None:
            while self._body_left > 0 and (budget is None or budget > 0):
                want = min(self._body_left, _CHUNK, budget if budget is not None else _CHUNK)
                data = self.rfile.read(want)
                if not data:
                    raise ConnectionError("client closed the connection mid-body")
                self._body_left -= len(data)
                self.rec.bytes_received += len(data)
                if budget is not None:
                    budget -= len(data)
                yield data
            return
        while not self._chunked_done and (budget is None or budget > 0):
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self._chunked_done = True
                return
            remaining = size
            while remaining:
                data = self.rfile.read(min(remaining, _CHUNK))
                if not data:
                    raise ConnectionError("client closed the connection mid-body")
                remaining -= len(data)
                self.rec.bytes_received += len(data)
                if budget is not None:
                    budget -= len(data)
                yield data
            self.rfile.readline()

    def _drain(self) -> None:
        for _ in self._body():
            pass

    def _read_json_body(self) -> tuple[Any, str | None]:
        """The parsed JSON body, or ``(None, problem)``."""
        data = bytearray()
        for chunk in self._body():
            data += chunk
            if len(data) > _MAX_JSON_BODY:
                self._drain()
                return None, "request body too large"
        try:
            return json.loads(data), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"request body is not JSON: {exc}"

    # -- responses -------------------------------------------------------------------------------
    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.lfs._stopping.wait(seconds)

    def _send_head(self, code: int, headers: Mapping[str, str]) -> None:
        self.rec.status = code
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _write(self, data: bytes) -> None:
        self.rec.bytes_sent += len(data)
        self.wfile.write(data)

    def _send(self, code: int, body: bytes, headers: Mapping[str, str]) -> None:
        if self._body_left or (self._body_left is None and not self._chunked_done):
            self._drain()
        self._send_head(code, {**headers, "Content-Length": str(len(body))})
        self._write(body)

    def _json(self, code: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._send(code, body, {"Content-Type": LFS_MEDIA_TYPE, **(headers or {})})

    def _error(self, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._json(code, {"message": message, "request_id": uuid.uuid4().hex[:12]}, headers)

    def _close_now(self) -> None:
        """Close the connection at once (a scripted cut)."""
        self.rec.cut = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _apply_generic(self, fault: Fault, *, batch: bool = False) -> bool:
        """Sleep ``fault.delay``; answer a status/raw/cut fault. True when it answered."""
        self.rec.fault = fault.kind if fault.kind is not FaultKind.OK else None
        self._pause(fault.delay)
        if fault.kind is FaultKind.STATUS:
            assert fault.code is not None
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if batch and fault.code == 401:
                headers.setdefault("LFS-Authenticate", 'Basic realm="Git LFS"')
            self._error(fault.code, fault.message or f"scripted status {fault.code}", headers)
            return True
        if fault.kind is FaultKind.RAW:
            assert fault.code is not None
            self._send(fault.code, fault.body or b"", dict(fault.headers))
            return True
        if fault.kind is FaultKind.CUT and self.rec.operation != "download":
            for _ in self._body(fault.after_bytes if self.rec.operation == "upload" else None):
                pass
            raise _Cut
        return False

    # -- batch -----------------------------------------------------------------------------------
    def _authorised(self) -> bool:
        creds = self.lfs.credentials
        if creds is None:
            return True
        expected = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        got = (self.headers.get("Authorization") or "").strip()
        if got and hmac.compare_digest(got.encode(), expected.encode()):
            return True
        self._error(401, "Credentials needed", {"LFS-Authenticate": 'Basic realm="Git LFS"'})
        return False

    def _media_types_ok(self) -> bool:
        if not self.lfs.strict_media_types:
            return True
        accept = [_media_type(part) for part in (self.headers.get("Accept") or "").split(",")]
        if LFS_MEDIA_TYPE not in accept:
            self._error(406, f"Accept must include {LFS_MEDIA_TYPE}")
            return False
        if _media_type(self.headers.get("Content-Type")) != LFS_MEDIA_TYPE:
            self._error(415, f"Content-Type must be {LFS_MEDIA_TYPE}")
            return False
        return True

    def _batch(self, repo: str) -> None:
        lfs = self.lfs
        body, problem = self._read_json_body()
        with lfs._lock:
            lfs._batch_calls += 1
            if body is not None:
                lfs._batch_bodies.append(body)
                lfs._batch_records.append((self.rec, body))
        if not self._authorised() or not self._media_types_ok():
            return
        problem = problem or _batch_problem(body)
        if problem:
            self._error(422, problem)
            return
        operation = body["operation"]
        if self._apply_generic(lfs._next_batch_fault(operation), batch=True):
            return
        with lfs._lock:
            ro_mode = lfs._read_only.get(repo)
        if operation == "upload" and ro_mode == "batch":
            self._error(403, f"{repo}: you have read access but not write access")
            return
        bad_algo = body.get("hash_algo", "sha256") not in (None, "sha256")
        objects = []
        for obj in body["objects"]:
            oid, size = obj.get("oid"), obj.get("size")
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if isinstance(oid, str):
                with lfs._lock:
                    lfs._attempts[(oid, "batch")] += 1
            if not isinstance(oid, str) or not _OID_RE.match(oid):
                entry["error"] = {"code": 422, "message": f"invalid oid {oid!r}"}
            elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
                entry["error"] = {"code": 422, "message": f"invalid size {size!r}"}
            elif bad_algo:
                entry["error"] = {"code": 409, "message": f"unsupported hash_algo {body['hash_algo']!r}"}
            else:
                entry.update(self._batch_entry(repo, operation, oid, size, ro_mode))
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _batch_entry(self, repo: str, operation: str, oid: str, size: int, ro_mode: str | None) -> dict[str, Any]:
        lfs = self.lfs
        fault = lfs._next_fault(oid, "batch")
        if fault.kind is FaultKind.OBJECT_ERROR:
            return {"error": {"code": fault.code, "message": fault.message}}
        stored = lfs.object_size(oid)
        if stored is not None and stored != size:
            return {"error": {"code": 422, "message": f"size {size} does not match the stored object ({stored} bytes)"}}
        if operation == "download":
            if stored is None:
                return {"error": {"code": 404, "message": "Object does not exist"}}
            return {"authenticated": True, "actions": {"download": lfs._issue(oid, "download", size, repo, fault)}}
        if ro_mode == "object":
            return {"error": {"code": 403, "message": f"{repo}: you have read access but not write access"}}
        if stored is not None:
            return {"authenticated": True}  # already there: no actions
        return {
            "authenticated": True,
            "actions": {
                "upload": lfs._issue(oid, "upload", size, repo, fault),
                "verify": lfs._issue(oid, "verify", size, repo, fault),
            },
        }

    def _locks(self, repo: str, verify: bool) -> None:
        if verify:
            self._read_json_body()
            if self._method_is("POST") and self._authorised():
                self._json(200, {"ours": [], "theirs": []})
        elif self._method_is("GET") and self._authorised():
            self._json(200, {"locks": []})

    # -- transfers -------------------------------------------------------------------------------
    def _check_token(self, oid: str, operation: str) -> _Ticket | Literal[False] | None:
        """The request's ticket; ``None`` when tokenless and allowed; False after answering."""
        value = (self.headers.get("Authorization") or "").strip()
        scheme, _, token = value.partition(" ")
        ticket = self.lfs._ticket(token.strip()) if scheme == "RemoteAuth" else None
        if ticket is None:
            if not self.lfs.action_auth:
                return None
            self._error(401, "missing or invalid action token (send the action's header)")
            return False
        if ticket.oid != oid or ticket.operation != operation:
            self._error(401, f"token was issued for {ticket.operation} of {ticket.oid}")
            return False
        self.rec.repo = ticket.repo
        if ticket.expired and ticket.reject_status is not None:
            self._error(ticket.reject_status, "action expired; request a new one from the batch API")
            return False
        return ticket

    def _count(self, oid: str, operation: str) -> None:
        with self.lfs._lock:
            self.lfs._attempts[(oid, operation)] += 1

    def _download(self, oid: str) -> None:
        lfs = self.lfs
        self._count(oid, "download")
        if self._check_token(oid, "download") is False:
            return
        fault = lfs._next_fault(oid, "download")
        if self._apply_generic(fault):
            return
        size = lfs.object_size(oid) if _OID_RE.match(oid) else None
        if size is None:
            self._error(404, "Object does not exist")
            return
        if fault.kind is FaultKind.RANGE_NOT_SATISFIABLE:
            self._error(416, "scripted: range not satisfiable", {"Content-Range": f"bytes */{size}"})
            return
        start, end, code = 0, size - 1, 200
        m = _RANGE_RE.match((self.headers.get("Range") or "").strip())
        if m and fault.kind is not FaultKind.IGNORE_RANGE:
            start = int(m["start"])
            end = min(int(m["end"]), size - 1) if m["end"] else size - 1
            if start >= size:
                self._error(416, f"range starts at {start}, object has {size} bytes", {"Content-Range": f"bytes */{size}"})
                return
            if end >= start:
                code = 206
            else:  # an invalid byte-range-spec: ignore the header (RFC 9110 14.1.1)
                start, end = 0, size - 1
        length = end - start + 1 if size else 0
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length), "Accept-Ranges": "bytes"}
        if code == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send_head(code, headers)
        self._stream(lfs.object_path(oid), start, length, fault)

    def _stream(self, path: Path, start: int, length: int, fault: Fault) -> None:
        limit = fault.after_bytes if fault.kind in (FaultKind.CUT, FaultKind.STALL) else None
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while sent < length:
                if limit is not None and sent >= limit:
                    if fault.kind is FaultKind.CUT:
                        raise _Cut
                    self.wfile.flush()
                    self._pause(fault.pause)
                    limit = None
                want = min(_CHUNK, length - sent)
                if limit is not None:
                    want = min(want, limit - sent)
                chunk = f.read(want)
                if not chunk:
                    break
                if sent == 0 and fault.kind is FaultKind.CORRUPT:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self._write(chunk)
                sent += len(chunk)
        if limit is not None and fault.kind is FaultKind.CUT:
            raise _Cut  # after_bytes >= length: close right after the body anyway

    def _upload(self, oid: str) -> None:
        lfs = self.lfs
        self._count(oid, "upload")
        ticket = self._check_token(oid, "upload")
        if ticket is False:
            return
        if ticket is not None:
            with lfs._lock:
                read_only = ticket.repo in lfs._read_only
            if read_only:
                self._error(403, f"{ticket.repo}: you have read access but not write access")
                return
        if self._apply_generic(lfs._next_fault(oid, "upload")):
            return
        if not _OID_RE.match(oid):
            self._error(422, f"invalid oid {oid!r}")
            return
        if not self._has_length():
            self._error(411, "Content-Length or chunked Transfer-Encoding required")
            self.close_connection = True
            return
        digest, received, tmp = hashlib.sha256(), 0, lfs._incoming()
        try:
            with open(tmp, "wb") as out:
                for chunk in self._body():
                    digest.update(chunk)
                    received += len(chunk)
                    out.write(chunk)
            problem = None
            if digest.hexdigest() != oid:
                problem = f"body hashes to {digest.hexdigest()}, not {oid}"
            elif ticket is not None and received != ticket.size:
                problem = f"body has {received} bytes, the batch request said {ticket.size}"
            if problem:
                self._error(422, problem)
                return
            lfs._commit_object(tmp, oid)
        finally:
            tmp.unlink(missing_ok=True)
        self._send(200, b"", {})

    def _verify(self) -> None:
        lfs = self.lfs
        body, problem = self._read_json_body()
        oid = body.get("oid") if isinstance(body, dict) else None
        self.rec.oid = oid if isinstance(oid, str) else None
        if isinstance(oid, str):
            self._count(oid, "verify")
        if not self._media_types_ok():
            return
        size = body.get("size") if isinstance(body, dict) else None
        if problem or not isinstance(oid, str) or not isinstance(size, int) or isinstance(size, bool):
            self._error(422, problem or 'verify body must be {"oid": str, "size": int}')
            return
        if self._check_token(oid, "verify") is False:
            return
        if self._apply_generic(lfs._next_fault(oid, "verify")):
            return
        stored = lfs.object_size(oid) if _OID_RE.match(oid) else None
        if stored is None:
            self._error(404, "Object does not exist")
        elif stored != size:
            self._error(422, f"object has {stored} bytes, not {size}")
        else:
            self._send(200, b"", {})


def _batch_problem(body: Any) -> str | None:
    """Why a batch request body is invalid as a whole (HTTP 422), or ``None``."""
    if not isinstance(body, dict):
        return "batch request must be a JSON object"
    if body.get("operation") not in ("download", "upload"):
        return f"operation must be 'download' or 'upload', not {body.get('operation')!r}"
    transfers = body.get("transfers")
    if transfers is not None:
        if not isinstance(transfers, list) or not all(isinstance(t, str) for t in transfers):
            return "transfers must be an array of strings"
        if "basic" not in transfers:
            return f"no supported transfer adapter in {transfers!r} (this server only speaks 'basic')"
    objects = body.get("objects")
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        return "objects must be an array of {oid, size} objects"
    ref = body.get("ref")
    if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("name", ""), str)):
        return "ref must be {name: string} or null"
    if "hash_algo" in body and not isinstance(body["hash_algo"], (str, type(None))):
        return "hash_algo must be a string"
    return None
