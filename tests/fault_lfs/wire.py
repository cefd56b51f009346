"""What the fault server's parts share: protocol constants, request records, action tickets."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from fault_lfs.faults import FaultKind

#: Media type of batch / verify request and response bodies.
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
#: What :meth:`FaultLfsServer.script` accepts as ``operation``.
OPERATIONS = ("batch", "download", "upload", "verify")
CHUNK = 64 * 1024
OID_RE = re.compile(r"\A[0-9a-f]{64}\Z")
RANGE_RE = re.compile(r"\Abytes=(?P<start>\d+)-(?P<end>\d*)\Z")


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
class Ticket:
    """What an action token allows."""

    oid: str
    operation: str
    size: int
    repo: str
    expired: bool = False
    reject_status: int | None = 401


class Cut(Exception):
    """Raised inside a handler to close the connection without (finishing) a response."""


def oids_of(body: Any) -> set[str]:
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        return set()
    return {oid for o in body["objects"] if isinstance(o, dict) and isinstance(oid := o.get("oid"), str)}
