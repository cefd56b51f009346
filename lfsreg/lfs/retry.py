"""How hard lfsreg tries a failed exchange: the one retry policy of the LFS transfer queue and the git remote.

Kept apart from the HTTP code so it imports nothing heavy (the git side uses it too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``sleep`` is injectable so tests need not wait."""

    max_retries: int = 8
    base_delay: float = 0.25
    max_delay: float = 10.0
    max_retry_time: float = 300.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        return min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))

    def next_wait(self, attempt: int, started: float, retry_after: float | None = None) -> float | None:
        """The wait before retry ``attempt`` (1-based) of work begun at ``started`` (``time.monotonic()``).

        ``None`` once the retries or the time are spent: the caller gives up with its last error.
        """
        wait = self.delay(attempt, retry_after)
        if attempt > self.max_retries or time.monotonic() - started + wait > self.max_retry_time:
            return None
        return wait
