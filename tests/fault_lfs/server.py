"""The fault-injecting Git LFS server: objects, scripts, observations (see :mod:`fault_lfs`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from fault_lfs.faults import ALLOWED, Fault, FaultKind, rfc3339
from fault_lfs.handler import Handler
from fault_lfs.wire import CHUNK, OID_RE, OPERATIONS, RANGE_RE, RecordedRequest, Ticket, oids_of


class LfsHTTPServer(ThreadingHTTPServer):
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
        self._tickets: dict[str, Ticket] = {}
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
        self._httpd: LfsHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> FaultLfsServer:
        """Bind to a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = LfsHTTPServer(("127.0.0.1", 0), Handler)
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
        if not OID_RE.match(oid):
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
            while chunk := src.read(CHUNK):
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
            if fault.kind not in ALLOWED[where]:
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
                        if oid not in oids_of(bodies.get(id(rec))):
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
            m = RANGE_RE.match(value or "")
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
            self._tickets[token] = Ticket(oid, operation, size, repo, expired, fault.reject_status if expired else None)
        href = self.verify_url if operation == "verify" else self.storage_url(oid)
        action: dict[str, Any] = {"href": href, "header": {"Authorization": f"RemoteAuth {token}"}}
        if not expired or fault.expiry == "hidden":
            action["expires_in"] = self.action_expires_in
        elif fault.expiry == "expires_in":
            action["expires_in"] = fault.expires_in
        else:
            action["expires_at"] = rfc3339(datetime.now(timezone.utc) - timedelta(hours=1))
        return action

    def _ticket(self, token: str) -> Ticket | None:
        with self._lock:
            return self._tickets.get(token)
