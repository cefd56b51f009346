"""Per-layer progress lines on a terminal, as ``docker push``/``pull`` draw them, plus a total.

:class:`LayerBoard` turns :class:`~lfsreg.progress.ProgressEvent`s into rows (pure state, no
terminal); :class:`LiveLines` draws the board with ``rich`` (cursor movement, width cropping,
redraw thread, log lines kept above the display). Only imported when stderr is a terminal, so
the CLI does not pay for ``rich`` otherwise.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..progress import DONE, ESTIMATE, PRESENT, TRANSFERRING, VERIFYING, WAITING, ProgressEvent
from .sizes import human_size

# What each action is called while it runs and once it is done (docker's words where it has them).
_RUNNING = {"push": "Preparing", "upload": "Pushing", "stored": "Storing", "download": "Downloading", "pull": "Writing"}
_FINISHED = {"push": "Staged", "upload": "Pushed", "stored": "Pushed", "download": "Download complete", "pull": "Pull complete"}
# The action whose end finishes a layer, per command; any action counts for other verbs.
_FINAL = {"push": frozenset({"upload", "stored"}), "pull": frozenset({"pull"})}


@dataclass(slots=True)
class _Line:
    key: str
    size: int
    action: str = ""
    phase: str = WAITING
    completed: int = 0
    started: float = 0.0
    worked: bool = False  # some action moved bytes (else a PRESENT layer cost nothing)
    finished: set[str] = field(default_factory=set)  # actions done


@dataclass(frozen=True, slots=True)
class Row:
    """One drawn line: layer id, status word, bar (``None``: no bar), bytes and rate texts."""

    label: str
    status: str
    fraction: float | None
    amount: str
    rate: str
    finished: bool = False


_HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def layer_id(key: str) -> str:
    """The sha256 hex a key names, else the key itself.

    ``sha256:<hex>`` and a ``docker save`` member path ``blobs/sha256/<hex>`` are the same layer.
    """
    found = _HEX64.search(key)
    return found.group(0) if found else key


def short_id(key: str) -> str:
    """``docker``'s short layer id: the first 12 hex digits of the digest."""
    hex_id = layer_id(key)
    return hex_id[:12] if hex_id != key else key.rsplit("/", 1)[-1][:24]


class LayerBoard:
    """The state of every layer of one command, fed by events from any thread."""

    def __init__(self, verb: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.verb = verb
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: dict[str, _Line] = {}
        self._final = _FINAL.get(verb)
        self._stage = ""  # the action that last started moving bytes: what the total line measures
        self._stage_start = 0.0
        self._stage_bytes = 0
        self._start = clock()

    def update(self, event: ProgressEvent) -> None:
        """Account for one event (the order of events for one key is kept); a push's estimate is no layer."""
        if event.action == ESTIMATE:
            return
        with self._lock:
            now = self._clock()
            ident = layer_id(event.key)
            line = self._lines.get(ident)
            if line is None:
                line = self._lines[ident] = _Line(event.key, event.total or 0)
            if event.total is not None and event.total > 0:
                line.size = event.total
            if event.phase == WAITING:
                if not line.action:  # an announcement never undoes progress
                    line.action = event.action
            elif event.phase == TRANSFERRING:
                self._transfer(line, event, now)
            else:
                line.action = event.action
                line.phase = event.phase
                if event.phase == DONE:
                    line.finished.add(event.action)
                    if line.worked:
                        line.completed = line.size

    def _transfer(self, line: _Line, event: ProgressEvent, now: float) -> None:
        if line.action != event.action or line.phase not in (TRANSFERRING, VERIFYING):
            line.action, line.completed, line.started = event.action, 0, now
            line.finished.discard(event.action)
            if event.action != self._stage:
                self._stage, self._stage_start, self._stage_bytes = event.action, now, 0
        line.phase = TRANSFERRING
        line.worked = True
        line.completed += event.delta
        if event.action == self._stage:
            self._stage_bytes += event.delta

    def _done(self, line: _Line) -> bool:
        if line.phase == PRESENT:
            return True
        if self._final is None:
            return line.phase == DONE
        return bool(line.finished & self._final)

    def _status(self, line: _Line) -> str:
        if line.phase == PRESENT:
            return "Already exists"
        if line.phase == WAITING:
            return "Waiting"
        if line.phase == VERIFYING:
            return "Verifying"
        if line.phase == DONE:
            return _FINISHED.get(line.action, "Done")
        return _RUNNING.get(line.action, line.action.capitalize())

    def rows(self) -> list[Row]:
        """One row per layer, in the order they were first seen, then the total row."""
        with self._lock:
            now = self._clock()
            rows = [self._row(line, now) for line in self._lines.values()]
            rows.append(self._total(now))
            return rows

    def _row(self, line: _Line, now: float) -> Row:
        label, status = short_id(line.key), self._status(line)
        if line.phase not in (TRANSFERRING, VERIFYING) or not line.size:
            return Row(label, status, None, "", "", self._done(line))
        done = max(0, min(line.completed, line.size))
        rate = _rate(done, now - line.started) if line.phase == TRANSFERRING else ""
        return Row(label, status, done / line.size, f"{human_size(done)}/{human_size(line.size)}", rate)

    def _total(self, now: float) -> Row:
        counted = [line for line in self._lines.values() if line.worked or line.phase != PRESENT]
        finished = sum(1 for line in self._lines.values() if self._done(line))
        size = sum(line.size for line in counted)
        done = 0
        for line in counted:
            if self._done(line) or self._stage in line.finished:
                done += line.size
            elif line.action == self._stage and line.phase in (TRANSFERRING, VERIFYING):
                done += max(0, min(line.completed, line.size))
        status = f"{finished}/{len(self._lines)} layers"
        if self._stage and finished < len(self._lines):
            status += f", {_RUNNING.get(self._stage, self._stage).lower()}"
        fraction = done / size if size else 1.0
        rate = _rate(self._stage_bytes, now - self._stage_start) if self._stage and finished < len(self._lines) else ""
        elapsed = int(now - self._start)
        return Row(
            "Total", status, fraction, f"{human_size(done)}/{human_size(size)}", f"{rate}  {elapsed // 60}:{elapsed % 60:02d}".strip()
        )


def _rate(count: int, seconds: float) -> str:
    return f"{human_size(int(max(count, 0) / seconds))}/s" if seconds >= 0.2 else ""


def fit(rows: list[Row], height: int) -> list[Row]:
    """At most ``height`` rows, the total (last) always among them: finished layers go first."""
    layers, total = rows[:-1], rows[-1:]
    excess = len(layers) - max(height - 1, 0)
    if excess > 0:
        gone = {id(r) for r in [r for r in layers if r.finished][:excess]}
        layers = [r for r in layers if id(r) not in gone][: max(height - 1, 0)]
    return layers + total


def render_rows(rows: list[Row]) -> Table:
    """The rows as a borderless grid: id, status, bar, bytes, rate."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, min_width=17)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True, justify="right")
    for row in rows:
        bar = ProgressBar(total=1.0, completed=row.fraction, width=30) if row.fraction is not None else Text("")
        style = "bold" if row is rows[-1] else ""
        grid.add_row(Text(row.label + ":", style=style), Text(row.status, style=style), bar, Text(row.amount), Text(row.rate))
    return grid


class LiveLines:
    """Draws a :class:`LayerBoard` on ``file`` (a terminal) ten times a second until :meth:`close`.

    Log records written to the terminal meanwhile appear above the lines (``rich`` holds them
    back until a line is complete).
    """

    def __init__(self, verb: str, file: TextIO | None = None, console: Console | None = None) -> None:
        self.board = LayerBoard(verb)
        self._console = console or Console(file=file or sys.stderr, highlight=False)
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._handlers: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __call__(self, event: ProgressEvent) -> None:
        """Account for ``event``; the first one starts the display."""
        self.board.update(event)
        if self._live is None:
            with self._lock:
                if self._live is None:
                    self._start()

    def _start(self) -> None:
        original = sys.stderr
        console = self._console
        live = Live(console=console, refresh_per_second=10, get_renderable=lambda: render_rows(fit(self.board.rows(), console.height - 1)))
        live.start()
        # Handlers set up with the real stderr would write through the drawing: send them to
        # rich's stand-in for stderr, which prints whole lines above the display.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original and sys.stderr is not original:
                handler.setStream(sys.stderr)
                self._handlers.append((handler, original))
        self._live = live

    def close(self) -> None:
        """Draw the final state and stop; the lines stay on the terminal."""
        with self._lock:
            for handler, stream in self._handlers:
                handler.setStream(stream)
            self._handlers.clear()
            if self._live is not None:
                self._live.refresh()
                self._live.stop()
