"""What the fault server will do: scripted faults, read-only repositories, action tokens."""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fault_lfs.faults import ALLOWED, Fault, FaultKind, rfc3339
from fault_lfs.wire import OPERATIONS, Ticket


class Scripts:
    """Per-object and whole-batch fault scripts, and the action tokens handed out in batch answers.

    Mixed into :class:`fault_lfs.server.FaultLfsServer`, which creates the state in ``__init__``
    and provides the hrefs (``storage_url``, ``verify_url``) that actions point to.
    """

    _lock: threading.RLock
    _read_only: dict[str, str]
    _scripts: dict[tuple[str, str], deque[Fault]]
    _batch_scripts: dict[str | None, deque[Fault]]
    _tickets: dict[str, Ticket]
    action_expires_in: int

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

    # -- action tokens (used by the handler) ------------------------------------------------------
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
