"""The catalogue of scripted misbehaviours of :class:`fault_lfs.FaultLfsServer`, and where each applies."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Literal


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
ALLOWED: dict[str, frozenset[FaultKind]] = {
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


def http_date(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return email.utils.format_datetime(when.astimezone(timezone.utc), usegmt=True)


def rfc3339(when: datetime) -> str:
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
            retry_after = http_date(retry_after)
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
