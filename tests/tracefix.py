"""Threads that start while another installs a trace function must not die (test runs only).

CPython before 3.12 refuses ``sys.settrace`` with ``RuntimeError: Cannot install a trace function
while another trace function is being installed`` when two threads install one at the same
moment (python/cpython#98257). Under coverage every new thread installs one as it starts
(``threading._bootstrap_inner``), so on a busy machine a thread now and then died before running
its target: once a cut proxy's relay thread (a failed test), once a transfer pool's worker (a
test run that waited forever for its future). The refusal is momentary, so the install is retried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

_BUSY = "another trace function is being installed"


def install() -> None:
    """Make ``sys.settrace`` retry while another thread is installing (no-op on 3.12+)."""
    if sys.version_info >= (3, 12) or getattr(sys.settrace, "_lfsreg_retrying", False):
        return
    original: Callable[[Any], None] = sys.settrace

    def settrace(function: Any) -> None:
        for _ in range(2000):
            try:
                return original(function)
            except RuntimeError as exc:
                if _BUSY not in str(exc):
                    raise
                time.sleep(0.0005)
        return original(function)

    settrace._lfsreg_retrying = True  # type: ignore[attr-defined]
    sys.settrace = settrace
