"""The transfer queue: batches of 100, 8 transfers at once, per-object retries (git-lfs ``tq``).

The queue does everything around moving bytes, for any :class:`Adapter` (HTTP ``basic``,
SSH ``git-lfs-transfer``): objects go to the adapter's batch call in batches, largest first;
each object's transfer then runs on a worker with its own retry counter: exponential backoff
from 250 ms (capped at 10 s) on :class:`lfsreg.errors.RetriableError` (a 5xx, a cut, a
stall), the server's ``Retry-After`` when it gave one, all bounded by a total time limit; an
action that expired (or whose signed href was refused) is re-requested from the batch call,
and so is every upload retry (the failed upload or verify may have stored the object).
Progress is reported per object and rolled back when an attempt fails. Failures are
collected per object and reported together, by oid.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol

from ..errors import BlobNotFound, LfsregError, NotFoundError, ProtocolError, RetriableError, error_for_status
from ..formats.lfs_pointer import LfsObject
from ..progress import PRESENT, VERIFYING, ProgressCallback, ProgressEvent, no_progress
from .batch import BatchItem, ExpiredActionError
from .cache import ObjectCache
from .retry import RetryPolicy

log = logging.getLogger(__name__)

#: Called with byte deltas as an attempt moves bytes.
Progress = Callable[[int], None]


class Adapter(Protocol):
    """One way to talk to an LFS server: the batch call, and moving one object each way.

    Adapters do one attempt and classify its failure (:class:`RetriableError` for what is worth
    retrying, :class:`ExpiredActionError` for a refused action); the queue retries. Methods are
    called from several threads at once.
    """

    label: str

    def batch(self, operation: str, objects: Sequence[LfsObject], ref: str | None) -> list[BatchItem]:
        """The server's answer for each object (at most 100), in the order given."""
        ...

    def upload(self, item: BatchItem, path: str, progress: Progress) -> None:
        """Send the file at ``path`` with ``item.actions["upload"]``."""
        ...

    def verify(self, item: BatchItem) -> None:
        """Ask the server to confirm an upload (where the batch answer or protocol calls for it)."""
        ...

    def download(self, item: BatchItem, cache: ObjectCache, progress: Progress) -> None:
        """Fetch the object with ``item.actions["download"]`` into ``cache`` (verified)."""
        ...

    def end(self) -> None:
        """A unit of work (an upload or a download of many objects) is over: release what it held.

        The adapter stays usable; it opens what it needs again on the next call.
        """
        ...


class _Stopped(BaseException):
    """Raised in workers once the queue is stopping (the main thread was interrupted)."""


def transfer_failed(operation: str, failures: dict[str, LfsregError]) -> LfsregError:
    """One error for per-object failures: the first one's class, naming it; ``failures`` kept.

    The class tells the caller what to do (e.g. :class:`BlobNotFound`,
    :class:`lfsreg.errors.AuthenticationError`); the attribute ``failures`` maps every oid to
    its error.
    """
    first_oid, first = next(iter(failures.items()))
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    message = f"LFS {operation} of sha256:{first_oid} failed: {first}{more}"
    err: LfsregError
    try:
        err = type(first)(message, hint=first.hint)
    except TypeError:
        err = ProtocolError(message, hint=first.hint)
    else:
        err.__dict__.update(first.__dict__)  # status, retry_after and the like
    err.failures = failures  # type: ignore[attr-defined]
    return err


class TransferQueue:
    """Moves objects between this machine and one LFS server through ``adapter``."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        jobs: int = 8,
        batch_size: int = 100,
        policy: RetryPolicy | None = None,
        ref: str | None = None,
    ) -> None:
        self.adapter = adapter
        self.label = adapter.label
        self.jobs = max(1, jobs)
        self.batch_size = batch_size
        self.policy = policy or RetryPolicy()
        self.ref = ref
        self._stop = threading.Event()

    def _back_off(self, exc: RetriableError, attempt: int, start: float) -> None:
        """Wait before retry ``attempt``, or re-raise ``exc`` once retries or time run out."""
        wait_s = self.policy.next_wait(attempt, start, exc.retry_after)
        if wait_s is None:
            raise exc
        log.debug("%s; retry %d in %.2f s", exc, attempt, wait_s)
        if wait_s:
            self.policy.sleep(wait_s)
        if self._stop.is_set():
            raise _Stopped

    # -- batch calls with retries -----------------------------------------------------------
    def _batch(self, operation: str, objects: Sequence[LfsObject]) -> list[BatchItem]:
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return self.adapter.batch(operation, objects, self.ref)
            except RetriableError as exc:
                attempt += 1
                self._back_off(exc, attempt, start)

    def batches(self, operation: str, objects: Sequence[LfsObject]) -> list[BatchItem]:
        """Answers for ``objects`` (duplicates dropped), largest first, in batches of ``batch_size``."""
        items: list[BatchItem] = []
        ordered = sorted({o.oid: o for o in objects}.values(), key=lambda o: -o.size)
        for i in range(0, len(ordered), self.batch_size):
            items.extend(self._batch(operation, ordered[i : i + self.batch_size]))
        return items

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the server does not hold: those an upload batch still asks to upload."""
        try:
            return [item.obj for item in self.batches("upload", objects) if "upload" in item.actions or item.error]
        finally:
            self.adapter.end()

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """Objects the server cannot serve, with why: a download batch per 100, nothing downloaded.

        A per-object error is the reason (404/410: missing; giftless says 422 for another
        size). A whole batch refused with 404 (giftless's answer when *every* object of it is
        missing) marks each of its objects missing.
        """
        out: list[tuple[LfsObject, str]] = []
        ordered = sorted({o.oid: o for o in objects}.values(), key=lambda o: -o.size)
        try:
            for i in range(0, len(ordered), self.batch_size):
                group = ordered[i : i + self.batch_size]
                try:
                    items = self._batch("download", group)
                except NotFoundError as exc:
                    log.debug("%s: %s; every object of the batch counts as missing", self.label, exc)
                    out.extend((o, "missing") for o in group)
                    continue
                for item in items:
                    if item.error is not None:
                        code, message = item.error
                        out.append((item.obj, "missing" if code in (404, 410) else f"{message or 'refused'} (code {code})"))
        finally:
            self.adapter.end()
        return out

    # -- per-object work ---------------------------------------------------------------------
    def _run(self, operation: str, item: BatchItem, work: Callable[[BatchItem, Progress], None], progress: ProgressCallback) -> None:
        start = time.monotonic()
        attempt = 0
        key, size = f"sha256:{item.obj.oid}", item.obj.size
        progress(ProgressEvent(key, operation, size))
        while True:
            moved = 0

            def step(n: int) -> None:
                nonlocal moved
                if self._stop.is_set():
                    raise _Stopped
                moved += n
                progress(ProgressEvent(key, operation, size, n))

            try:
                if any(a.expired() for a in item.actions.values()):
                    raise ExpiredActionError(f"{operation} action for {key} expired")
                work(item, step)
                break
            except RetriableError as exc:
                if moved:
                    progress(ProgressEvent(key, operation, size, -moved))
                attempt += 1
                self._back_off(exc, attempt, start)
                if isinstance(exc, ExpiredActionError) or operation == "upload":
                    # A failed upload or verify may still have stored the object (or another
                    # uploader is writing it right now): ask the server again, as git-lfs does.
                    fresh = self._batch(operation, [item.obj])[0]
                    if fresh.error:
                        raise _object_error(fresh) from None
                    if operation == "upload" and "upload" not in fresh.actions:
                        break  # someone else finished the upload meanwhile
                    item = fresh
            except BaseException:
                if moved:
                    progress(ProgressEvent(key, operation, size, -moved))
                raise
        progress(ProgressEvent(key, operation, size, 0, True))

    def _all(
        self, operation: str, items: Sequence[BatchItem], work: Callable[[BatchItem, Progress], None], progress: ProgressCallback
    ) -> None:
        failures: dict[str, LfsregError] = {item.obj.oid: _object_error(item) for item in items if item.error is not None}
        todo = [i for i in items if i.error is None and i.actions]
        if todo:
            pool = ThreadPoolExecutor(min(self.jobs, len(todo)), thread_name_prefix="lfsreg-lfs")
            futures: dict[str, Future[None]] = {}
            try:
                futures = {i.obj.oid: pool.submit(self._run, operation, i, work, progress) for i in todo}
                for oid, future in futures.items():
                    exc = future.exception()
                    if isinstance(exc, LfsregError):
                        failures[oid] = exc
                    elif exc is not None:
                        raise exc
            except BaseException:
                # Interrupted (SIGTERM, Ctrl-C) or a bug: stop the workers at their next chunk.
                self._stop.set()
                for future in futures.values():
                    future.cancel()
                wait(list(futures.values()))
                raise
            finally:
                pool.shutdown(wait=True)
        if failures:
            raise transfer_failed(operation, failures)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload the staged files the server lacks (and verify them where it asks); files stay."""
        paths = {obj.oid: path for obj, path in items}

        def work(item: BatchItem, step: Progress) -> None:
            if "upload" in item.actions:
                self.adapter.upload(item, paths[item.obj.oid], step)
                progress(ProgressEvent(f"sha256:{item.obj.oid}", "upload", item.obj.size, phase=VERIFYING))
                self.adapter.verify(item)

        try:
            batch = self.batches("upload", [o for o, _ in items])
            for item in batch:
                if item.error is None and not item.actions:  # the server holds it already
                    progress(ProgressEvent(f"sha256:{item.obj.oid}", "upload", item.obj.size, phase=PRESENT))
            self._all("upload", batch, work, progress)
        finally:
            self.adapter.end()

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Download ``objects`` into ``cache`` (each verified before it appears there)."""

        def work(item: BatchItem, step: Progress) -> None:
            self.adapter.download(item, cache, step)

        try:
            self._all("download", self.batches("download", objects), work, progress)
        finally:
            self.adapter.end()


def _object_error(item: BatchItem) -> LfsregError:
    """The error for an object the batch answer refused (``error: {code, message}``)."""
    assert item.error is not None
    code, message = item.error
    text = f"{message or 'error'} (code {code})"
    if code in (404, 410):
        return BlobNotFound(text)
    return error_for_status(code, text) if 400 <= code <= 599 else ProtocolError(text)
