"""The fault-injecting Git LFS server: its life cycle and addresses (see :mod:`fault_lfs`).

What it stores is :mod:`fault_lfs.store`, what it will do :mod:`fault_lfs.scripts`, what tests
see of it :mod:`fault_lfs.observations`; the routes are :mod:`fault_lfs.handler`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from untraced import UntracedThreadingHTTPServer, untraced

from fault_lfs.faults import Fault
from fault_lfs.handler import Handler
from fault_lfs.observations import Observations
from fault_lfs.scripts import Scripts
from fault_lfs.store import ObjectStore
from fault_lfs.wire import RecordedRequest, Ticket


class LfsHTTPServer(UntracedThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    lfs: FaultLfsServer


class FaultLfsServer(ObjectStore, Scripts, Observations):
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
        self._thread = threading.Thread(target=untraced(httpd.serve_forever), kwargs={"poll_interval": 0.05}, daemon=True)
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
