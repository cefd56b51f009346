"""Terminal output for the CLI: tables, JSON, progress bars and error lines."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from ..progress import ProgressEvent

if TYPE_CHECKING:
    from .progress_lines import LiveLines


_CHUNK = 8192  # rows written at once: a listing of 90,000 rows a line at a time took a third of a second


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print left-aligned columns separated by three spaces, like ``docker images``."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    # Many rows a write (click strips ANSI codes per line or for many lines alike: a code never spans lines).
    line = "   ".join(f"{{:<{w}}}" for w in widths)
    click.echo(line.format(*headers).rstrip())
    for start in range(0, len(rows), _CHUNK):
        click.echo("\n".join([line.format(*row).rstrip() for row in rows[start : start + _CHUNK]]))


def emit_json(obj: Any) -> None:
    """Print JSON for scripts."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


class ProgressBars:
    """The CLI's progress callback: per-layer lines on stderr when it is a terminal, else nothing.

    ``rich`` (through :mod:`.progress_lines`) is imported only once there is something to draw.
    """

    def __init__(self, verb: str, enabled: bool | None = None) -> None:
        self.enabled = _is_terminal(sys.stderr) if enabled is None else enabled
        self.verb = verb
        self._lines: LiveLines | None = None
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        """Draw ``event`` (no-op unless enabled)."""
        if not self.enabled:
            return
        if self._lines is None:
            with self._lock:
                if self._lines is None:
                    from .progress_lines import LiveLines  # here: rich costs ~30 ms to import

                    self._lines = LiveLines(self.verb)
        self._lines(event)

    def close(self) -> None:
        """Leave the final lines on the terminal."""
        if self._lines is not None:
            self._lines.close()


def _is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"
