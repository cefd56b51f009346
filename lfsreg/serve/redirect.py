"""``--redirect``: send a client to a blob's LFS download URL instead of streaming it.

Only when the LFS server's download action for the object needs no header (a presigned URL, as
GitHub's and S3's are): the client can fetch it as it is, and clients drop ``Authorization`` on
such a redirect. An action with a header (a token the server minted for lfsreg), an href with
credentials in it, a chunked layer, a local registry, or a batch request that fails: the blob is
streamed as without ``--redirect``. Answers are kept per object until shortly before they expire
(at most :data:`KEEP` seconds), so a busy blob costs one batch request now and then.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from ..errors import LfsregError
from ..formats.lfs_pointer import LfsObject
from ..lfs.queue import TransferQueue
from ..lfs.store import CachedLfsStore, LfsStore
from ..registry.endpoint import DeferredRemote

log = logging.getLogger(__name__)
#: Seconds an answer is reused at most; and how long before its expiry it stops being used.
KEEP, MARGIN = 300.0, 60.0


class Redirector:
    """Download URLs that need no header, per LFS object (thread-safe)."""

    def __init__(self, lfs: LfsStore, clock: object = time.time) -> None:
        self.lfs = lfs
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str | None, float]] = {}  # oid -> (href or None, until)

    def _queue(self) -> TransferQueue | None:
        if not isinstance(self.lfs, CachedLfsStore):
            return None  # a local registry: no URL to send anyone to
        remote = self.lfs.remote
        if isinstance(remote, DeferredRemote):
            remote = remote.chosen("download")
        return remote if isinstance(remote, TransferQueue) else None

    def location(self, obj: LfsObject) -> str | None:
        """Where a client can download ``obj`` with no header, or ``None`` (stream it)."""
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            known = self._known.get(obj.oid)
        if known is not None and known[1] > now:
            return known[0]
        href, until = self._ask(obj, now)
        with self._lock:
            if len(self._known) > 10000:
                self._known.clear()
            self._known[obj.oid] = (href, until)
        return href

    def _ask(self, obj: LfsObject, now: float) -> tuple[str | None, float]:
        try:
            queue = self._queue()
            if queue is None:
                return None, now + KEEP
            try:
                items = queue.batches("download", [obj])
            finally:
                queue.adapter.end()
        except LfsregError as exc:
            log.debug("no redirect for sha256:%s: %s", obj.oid, exc)
            return None, now + 5  # ask again soon
        action = items[0].actions.get("download") if items and items[0].error is None else None
        if action is None or action.header or urlsplit(action.href).username is not None:
            return None, now + KEEP
        until = now + KEEP if action.expires is None else min(now + KEEP, action.expires - MARGIN)
        return (action.href, until) if until > now else (None, now + 5)


__all__ = ["Redirector"]
