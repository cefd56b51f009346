"""Progress as data: the library emits :class:`ProgressEvent`s and never prints.

A renderer (the CLI's per-layer lines, or an embedding program) subscribes by passing a
callback. Callbacks may be called from worker threads, concurrently for different keys.

Vocabulary. ``key`` names one unit of work, a layer as the operation's source names it
(``sha256:…``). ``action`` says what is done to it:

- ``"push"``: reading a source layer and staging it (compressing it when asked);
- ``"upload"``: sending a staged layer to an LFS server;
- ``"stored"``: moving a staged layer into a local store (no byte events);
- ``"download"``: fetching a layer from an LFS server into the local cache;
- ``"pull"``: reading a layer back out of the store, verified, into the destination;
- ``"estimate"``: once per push, before any upload (key ``"registry"``): ``total`` is the bytes
  the push adds to the host's LFS storage, ``detail`` the whole estimate
  (:class:`lfsreg.ops.limits.Estimate` as a dict).

``phase`` says where the action stands, in this order for one key and action:

- :data:`WAITING`: announced, not started (``total`` is its size);
- :data:`TRANSFERRING`: bytes flow, ``delta`` bytes per event; ``delta`` may be negative when
  a retry rolls progress back. One arriving after :data:`DONE` (a layer read twice) or after
  events of another action starts the action anew from zero;
- :data:`VERIFYING`: all bytes moved, the result is being checked (e.g. an LFS ``verify`` call);
- :data:`DONE`: the action finished;
- :data:`PRESENT`: nothing to do, the destination already holds the layer.

Events for one key arrive in order. ``done`` is true exactly for :data:`DONE` and
:data:`PRESENT` (kept for callers written before phases existed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WAITING = "waiting"
TRANSFERRING = "transferring"
VERIFYING = "verifying"
DONE = "done"
PRESENT = "present"
PHASES = (WAITING, TRANSFERRING, VERIFYING, DONE, PRESENT)
ESTIMATE = "estimate"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of progress on one unit of work (a layer, a manifest…); see the module docstring.

    ``phase`` defaults to :data:`DONE` when ``done`` is given, else :data:`TRANSFERRING`.
    ``detail`` carries what an action has beyond bytes (an ``"estimate"``'s numbers).
    """

    key: str
    action: str
    total: int | None = None
    delta: int = 0
    done: bool = False
    phase: str = ""
    detail: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        phase = self.phase or (DONE if self.done else TRANSFERRING)
        if phase not in PHASES:
            raise ValueError(f"unknown progress phase {phase!r}")
        # frozen: set the derived fields the way dataclasses' own __init__ does
        object.__setattr__(self, "phase", phase)
        object.__setattr__(self, "done", phase in (DONE, PRESENT))


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore every event."""
