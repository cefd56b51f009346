"""One thread that calls functions when their time comes: the deadlines of network requests.

A timer thread per request is costly and, under coverage, fragile: a thread that starts while
another installs its trace function can die ("Cannot install a trace function while another
trace function is being installed"), taking whatever it was meant to do with it. So every
deadline of the process (smart-HTTP exchanges in :mod:`lfsreg.git.transport`, LFS requests in
:mod:`lfsreg.lfs.deadline`) goes into one heap served by one daemon thread, started by the
first :func:`schedule` (and again in a forked child, which inherits no threads).

Callbacks run on the watchdog thread, one after another: they must be quick and never block
(shutting a socket down is the intended use). One that raises is logged, and the others still
run. Cancelling is lazy: :meth:`Watch.cancel` drops the callback (and with it whatever the
callback holds, such as a socket) at once; the heap entry goes when it comes due, or when
cancelled entries make up most of the heap, whichever is first.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["Watch", "Watchdog", "schedule"]

#: Below this many entries the heap is never compacted (cancelled entries cost little).
_COMPACT_MIN = 64


class Watch:
    """One scheduled call; :meth:`cancel` stops it if it has not run yet."""

    __slots__ = ("_callback", "_owner", "when")

    def __init__(self, when: float, callback: Callable[[], None], owner: Watchdog) -> None:
        self.when = when
        self._callback: Callable[[], None] | None = callback
        self._owner = owner

    @property
    def pending(self) -> bool:
        """Whether the call is still to come (neither run nor cancelled)."""
        return self._callback is not None

    def cancel(self) -> None:
        """Do not call it (no effect once it ran). Constant time; safe from any thread, also from a callback."""
        self._owner._cancel(self)


class Watchdog:
    """A heap of :class:`Watch` es, ordered by time, and the one daemon thread that runs them."""

    def __init__(self, name: str = "lfsreg-deadlines") -> None:
        self.name = name
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Watch]] = []
        self._cancelled = 0  # cancelled entries still in the heap
        self._order = itertools.count()  # ties run in the order they were scheduled
        self._pid = 0  # the process whose thread runs (a forked child starts its own)
        ref = weakref.ref(self)  # a watchdog that is gone needs no fork hook (tests make many)

        def forked() -> None:
            dog = ref()
            if dog is not None:
                dog._forked()

        os.register_at_fork(after_in_child=forked)

    def schedule(self, when: float, callback: Callable[[], None]) -> Watch:
        """Call ``callback()`` on the watchdog thread at ``when`` (``time.monotonic()``; a past time: at once)."""
        watch = Watch(when, callback, self)
        with self._cond:
            heapq.heappush(self._due, (when, next(self._order), watch))
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
            elif self._due[0][2] is watch:
                self._cond.notify()  # it sleeps until a later time: wake it for this one
        return watch

    def _cancel(self, watch: Watch) -> None:
        with self._cond:
            if watch._callback is None:
                return
            watch._callback = None
            self._cancelled += 1
            if self._cancelled > len(self._due) // 2 and len(self._due) >= _COMPACT_MIN:
                self._due = [entry for entry in self._due if entry[2]._callback is not None]
                heapq.heapify(self._due)
                self._cancelled = 0

    def pending(self) -> int:
        """How many calls are still to come."""
        with self._cond:
            return len(self._due) - self._cancelled

    def _forked(self) -> None:
        # The parent's lock may have been held by a thread the child does not have.
        self._cond = threading.Condition()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                watch = heapq.heappop(self._due)[2]
                callback, watch._callback = watch._callback, None
                if callback is None:
                    self._cancelled -= 1
                    continue
            try:
                callback()
            except Exception:  # one broken callback must not stop every other deadline
                log.exception("%s: a scheduled call failed", self.name)


_WATCHDOG = Watchdog()


def schedule(when: float, callback: Callable[[], None]) -> Watch:
    """Call ``callback()`` at ``when`` (``time.monotonic()``) on the process's one watchdog thread."""
    return _WATCHDOG.schedule(when, callback)
