"""What tests observe of the fault server: recorded requests, bodies and counters."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import Counter
from typing import Any

from fault_lfs.wire import RANGE_RE, RecordedRequest, oids_of


class Observations:
    """The request log and counters; the handler appends with :meth:`_record`.

    Mixed into :class:`fault_lfs.server.FaultLfsServer`, which creates the state in ``__init__``.
    """

    _lock: threading.RLock
    _attempts: Counter[tuple[str, str]]
    _requests: list[RecordedRequest]
    _batch_bodies: list[Any]
    _batch_records: list[tuple[RecordedRequest, Any]]
    _batch_calls: int

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

    # -- used by the handler ---------------------------------------------------------------------
    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)
