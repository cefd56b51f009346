"""Terminal output for the CLI: tables, JSON, progress bars and error lines."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import click

from ..progress import ProgressEvent


def human_size(n: int) -> str:
    """``docker images`` style sizes: 1.2kB, 3.4MB, 5.6GB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{n}B"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print left-aligned columns separated by three spaces, like ``docker images``."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        click.echo("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def emit_json(obj: Any) -> None:
    """Print JSON for scripts."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


class ProgressBars:
    """Renders :class:`ProgressEvent`s as one status line on stderr, only on a terminal."""

    def __init__(self, verb: str, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.verb = verb
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._finished: set[str] = set()
        self._action: dict[str, str] = {}
        self._start = self._last = time.monotonic()  # first draw after 0.1 s, once the job is announced

    def __call__(self, event: ProgressEvent) -> None:
        """Account for one event and redraw at most ten times a second."""
        if not self.enabled:
            return
        with self._lock:
            # A key counts under the first action seen for it: after a layer was downloaded,
            # reading it back from the cache is not more progress.
            if self._action.setdefault(event.key, event.action) != event.action:
                return
            if event.total is not None:
                self._totals[event.key] = event.total
            self._done[event.key] = self._done.get(event.key, 0) + event.delta
            if event.done:
                self._finished.add(event.key)
            now = time.monotonic()
            if now - self._last > 0.1 or event.done:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        total = sum(self._totals.values())
        done = sum(self._done.values())
        rate = done / max(now - self._start, 1e-6)
        pct = 100 * done / total if total else 100
        line = (
            f"{self.verb}: {len(self._finished)}/{len(self._totals)} layers  "
            f"{human_size(done)}/{human_size(total)} ({pct:3.0f}%)  {human_size(int(rate))}/s"
        )
        sys.stderr.write("\r" + line.ljust(78))
        sys.stderr.flush()

    def close(self) -> None:
        """End the status line."""
        if self.enabled and self._totals:
            sys.stderr.write("\n")
            sys.stderr.flush()
