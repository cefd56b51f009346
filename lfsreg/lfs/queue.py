"""The transfer queue: batches of 100, 8 transfers at once, per-object retries (git-lfs ``tq``).

Objects go to the batch API in batches, largest first; each object's transfer then runs on a
worker with its own retry counter: exponential backoff from 250 ms (capped at 10 s) on
connection errors and 5xx, the server's ``Retry-After`` on 429/503, all bounded by a total
time limit; an action that expired (or whose signed href was refused) is re-requested from
the batch API. Failures are collected per object and reported together, by oid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import requests

from ..errors import BlobNotFound, LfsregError
from ..formats.lfs_pointer import LfsObject
from ..progress import PRESENT, VERIFYING, ProgressCallback, ProgressEvent, no_progress
from . import transfer
from .api import Action, BatchClient, BatchItem, ExpiredActionError, LfsError, RetriableError
from .cache import ObjectCache
from .retry import RetryPolicy

log = logging.getLogger(__name__)


class TransferError(LfsregError):
    """Some objects could not be transferred; ``failures`` maps oid to the reason."""

    def __init__(self, operation: str, failures: dict[str, LfsregError]) -> None:
        first_oid, first = next(iter(failures.items()))
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"LFS {operation} of sha256:{first_oid} failed: {first}{more}", hint=first.hint)
        self.failures = failures


class TransferQueue:
    """Moves objects between this machine and one LFS endpoint."""

    def __init__(
        self,
        client: BatchClient,
        session: requests.Session,
        *,
        jobs: int = 8,
        batch_size: int = 100,
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        ref: str | None = None,
    ) -> None:
        self.client = client
        self.session = session
        self.jobs = jobs
        self.batch_size = batch_size
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.ref = ref

    def _back_off(self, exc: RetriableError, attempt: int, start: float) -> None:
        """Wait before retry ``attempt``, or re-raise ``exc`` once retries or time run out."""
        wait = self.policy.delay(attempt, exc.retry_after)
        if attempt > self.policy.max_retries or time.monotonic() - start + wait > self.policy.max_retry_time:
            raise exc
        log.debug("%s; retry %d in %.2f s", exc, attempt, wait)
        if wait:
            self.policy.sleep(wait)

    # -- batch calls with retries -----------------------------------------------------------
    def _batch(self, operation: str, objects: Sequence[LfsObject]) -> list[BatchItem]:
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return self.client.batch(operation, objects, ref=self.ref)
            except RetriableError as exc:
                attempt += 1
                self._back_off(exc, attempt, start)

    def batches(self, operation: str, objects: Sequence[LfsObject]) -> list[BatchItem]:
        """Batch-API answers for ``objects``, in batches of at most ``batch_size``."""
        items: list[BatchItem] = []
        ordered = sorted({o.oid: o for o in objects}.values(), key=lambda o: -o.size)
        for i in range(0, len(ordered), self.batch_size):
            items.extend(self._batch(operation, ordered[i : i + self.batch_size]))
        return items

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the server does not hold: those an upload batch still asks to upload."""
        return [item.obj for item in self.batches("upload", objects) if "upload" in item.actions or item.error]

    # -- per-object work ---------------------------------------------------------------------
    def _run(self, operation: str, item: BatchItem, work: Callable[[dict[str, Action]], None]) -> None:
        start = time.monotonic()
        attempt = 0
        actions = item.actions
        while True:
            try:
                if any(a.expired() for a in actions.values()):
                    raise ExpiredActionError(f"{operation} action for sha256:{item.obj.oid} expired")
                work(actions)
                return
            except RetriableError as exc:
                attempt += 1
                self._back_off(exc, attempt, start)
                if isinstance(exc, ExpiredActionError):
                    fresh = self._batch(operation, [item.obj])[0]
                    if fresh.error:
                        raise LfsError(f"sha256:{item.obj.oid}: {fresh.error[1]} (code {fresh.error[0]})") from None
                    if operation == "upload" and "upload" not in fresh.actions:
                        return  # someone else finished the upload meanwhile
                    actions = fresh.actions

    def _all(self, operation: str, items: Sequence[BatchItem], work: Callable[[BatchItem, dict[str, Action]], None]) -> None:
        failures: dict[str, LfsregError] = {}
        for item in items:
            if item.error is not None:
                code, message = item.error
                err_cls = BlobNotFound if code in (404, 410) else LfsError
                failures[item.obj.oid] = err_cls(f"{message or 'error'} (code {code})")
        todo = [i for i in items if i.error is None and i.actions]
        with ThreadPoolExecutor(max(1, self.jobs), thread_name_prefix="lfsreg-lfs") as pool:
            futures = {i.obj.oid: pool.submit(self._run, operation, i, lambda a, i=i: work(i, a)) for i in todo}
            for oid, future in futures.items():
                exc = future.exception()
                if isinstance(exc, LfsregError):
                    failures[oid] = exc
                elif exc is not None:
                    raise exc
        if failures:
            raise TransferError(operation, failures)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload staged files the server lacks, then call each ``verify`` action."""
        paths = {obj.oid: path for obj, path in items}

        def work(item: BatchItem, actions: dict[str, Action]) -> None:
            key = f"sha256:{item.obj.oid}"
            progress(ProgressEvent(key, "upload", item.obj.size))
            if "upload" in actions:
                transfer.upload(
                    self.session,
                    item.obj,
                    paths[item.obj.oid],
                    actions["upload"],
                    lambda n: progress(ProgressEvent(key, "upload", item.obj.size, n)),
                    self.timeout,
                )
                if "verify" in actions:
                    progress(ProgressEvent(key, "upload", item.obj.size, phase=VERIFYING))
                    transfer.verify(self.session, item.obj, actions["verify"], self.timeout)
            progress(ProgressEvent(key, "upload", item.obj.size, 0, True))

        batch = self.batches("upload", [o for o, _ in items])
        for item in batch:
            if item.error is None and not item.actions:  # the server holds it already
                progress(ProgressEvent(f"sha256:{item.obj.oid}", "upload", item.obj.size, phase=PRESENT))
        self._all("upload", batch, work)

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Download ``objects`` into ``cache`` (each verified before it appears there)."""

        def work(item: BatchItem, actions: dict[str, Action]) -> None:
            key = f"sha256:{item.obj.oid}"
            progress(ProgressEvent(key, "download", item.obj.size))
            transfer.download(
                self.session,
                item.obj,
                actions["download"],
                cache,
                lambda n: progress(ProgressEvent(key, "download", item.obj.size, n)),
                self.timeout,
            )
            progress(ProgressEvent(key, "download", item.obj.size, 0, True))

        self._all("download", self.batches("download", objects), work)
