"""Progress as data: the library emits :class:`ProgressEvent`s and never prints.

A renderer (the CLI's progress bars, or an embedding program) subscribes by passing a
callback. Events for one key arrive in order; ``delta`` may be negative when a retry rolls
progress back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of progress on one unit of work (a layer, a manifest…)."""

    key: str
    action: str
    total: int | None = None
    delta: int = 0
    done: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore every event."""
