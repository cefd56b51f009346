"""``lfsreg serve``: one object that wires the registry, access, the read and write sides and HTTP.

::

    with lfsreg.Registry("/srv/images.git") as reg:
        server = RegistryServer(reg, ServeOptions(listen="127.0.0.1:5000"))
        server.serve_forever()        # until server.shutdown() or KeyboardInterrupt; then close()
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from .auth import Access
from .blobs import BlobReader
from .http import Server
from .read import ReadSide
from .redirect import Redirector
from .router import Router, WriteRoutes
from .signatures import SignatureGate
from .state import DEFAULT_REFRESH, ServeContext

if TYPE_CHECKING:
    from ..api import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """How to serve.

    Attributes:
        listen: ``HOST:PORT`` (port 0: any free port; :attr:`RegistryServer.url` tells which).
        refresh: seconds before a change pushed by someone else is served.
        htpasswd: an htpasswd file of bcrypt hashes: clients must log in.
        token_file: a file of tokens, one a line: clients must send one.
        read_only: refuse writes even to authenticated clients (without htpasswd or tokens,
            writes are always refused).
        redirect: answer a blob ``GET`` with a 307 to its LFS ``href`` when that needs no header.
        grace: seconds a shutdown waits for requests in progress.
        require_signatures: serve a manifest the trust policy covers only when it is signed
            as the policy asks (:mod:`lfsreg.serve.signatures`).
    """

    listen: str = "127.0.0.1:5000"
    refresh: float = DEFAULT_REFRESH
    htpasswd: str | None = None
    token_file: str | None = None
    read_only: bool = False
    redirect: bool = False
    grace: float = 10.0
    require_signatures: bool = False


def parse_listen(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` (``[::1]:PORT`` for IPv6); :class:`UsageError` if malformed."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5000")
    return host.strip("[]") or "0.0.0.0", int(port)


def _write_side(ctx: ServeContext) -> WriteRoutes | None:
    """The write side (:mod:`lfsreg.serve.write`)."""
    from .write import WriteSide

    return WriteSide(ctx)


class RegistryServer:
    """An OCI distribution-spec registry serving ``registry`` at ``options.listen``.

    The registry is read here once (errors surface before the port is bound). Call
    :meth:`serve_forever` (blocks) or :meth:`start` (a thread), then :meth:`close`.
    """

    def __init__(self, registry: Registry, options: ServeOptions | None = None) -> None:
        self.options = options or ServeOptions()
        if not self.options.refresh > 0:
            raise UsageError(f"--refresh {self.options.refresh}: expected a number of seconds greater than 0")
        host, port = parse_listen(self.options.listen)
        self.access = Access(htpasswd=self.options.htpasswd, token_file=self.options.token_file, read_only=self.options.read_only)
        self.context = ServeContext(registry, refresh=self.options.refresh)
        write = _write_side(self.context) if self.access.writable else None
        redirect = Redirector(self.context.lfs) if self.options.redirect else None
        self.blobs = BlobReader(self.context, write.staged_blob if write is not None else None, redirect)
        gate = SignatureGate(self.context) if self.options.require_signatures else None
        self.router = Router(ReadSide(self.context, self.blobs, gate), write, self.access)
        try:
            self.http = Server((host, port), self.router)
        except OSError as exc:
            raise UsageError(f"--listen {self.options.listen}: {exc.strerror or exc}") from None
        self._thread: threading.Thread | None = None

    @property
    def writable(self) -> bool:
        """Whether authenticated clients may write."""
        return self.router.write is not None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` the server listens on."""
        host, port = self.http.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (from another thread) or an exception (Ctrl-C, SIGTERM)."""
        log.info("serving %s at %s (%s)", self.context.registry.label, self.url, "read-write" if self.writable else "read-only")
        self.http.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve from a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="lfsreg-serve", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting requests (returns once the accept loop ended; call from another thread)."""
        self.http.shutdown()

    def close(self) -> None:
        """Stop listening, give requests in progress ``grace`` seconds, release the socket."""
        if self._thread is not None:
            self.http.shutdown()
            self._thread.join()
            self._thread = None
        self.http.socket.close()  # no new connections while the last requests finish
        left = self.http.drain(self.options.grace)
        if left:
            log.warning("stopping with %d request(s) still in progress", left)
        self.http.cut_connections()
        self.http.server_close()


__all__ = ["RegistryServer", "ServeOptions", "parse_listen"]
