"""Bytes a pull moved: from the host (the bandwidth it meters) and from the local cache.

Counted from the operation's own progress events, so every store is measured the same way:
``download`` bytes came over the network (retried bytes included: the host counts them too);
the layers the pull read (``pull`` announcements) minus those downloaded came from the local
cache, or from the registry's own disk for a local registry (``local``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..progress import DONE, TRANSFERRING, WAITING, ProgressCallback, ProgressEvent


@dataclass
class Traffic:
    """Bytes moved by one pull (fill it by passing :meth:`tap`'s callback as the progress callback)."""

    from_host: int = 0
    from_cache: int = 0
    local: bool = False
    transfer_limit: int | None = None  # the registry's limits.transfer (bytes a month), if set
    _needed: dict[str, int] = field(default_factory=dict, repr=False)
    _downloaded: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tap(self, progress: ProgressCallback) -> ProgressCallback:
        """A callback that counts each event, then passes it on to ``progress``."""

        def counted(event: ProgressEvent) -> None:
            with self._lock:
                if event.action == "pull" and event.phase == WAITING and event.total is not None:
                    self._needed[event.key] = event.total
                elif event.action == "download" and event.phase == TRANSFERRING and event.delta > 0:
                    self.from_host += event.delta  # a retry's roll-back (negative) was moved all the same
                elif event.action == "download" and event.phase == DONE and event.total is not None:
                    self._downloaded[event.key] = event.total
                self.from_cache = sum(size for key, size in self._needed.items() if key not in self._downloaded)
            progress(event)

        return counted


__all__ = ["Traffic"]
