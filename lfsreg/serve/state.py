"""What every handler of ``lfsreg serve`` shares: the registry, kept fresh, and its layer store.

Freshness: the registry's tip is read again when the view is older than ``refresh`` seconds and
a request needs it (for a remote registry, one ref query when nothing changed; a fetch of what
is new otherwise). Nothing is queried while no request comes. A tip that cannot be read keeps
the last view in service (logged) and is tried again after ``refresh`` seconds.

Git objects are read by one thread at a time (:meth:`ServeContext.reading`): dulwich's object
store is not meant for concurrent readers. Manifests, tags and pointers are small, so requests
hold the lock briefly; blob bytes are streamed from LFS files outside it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import LfsregError

if TYPE_CHECKING:
    from ..api import Registry
    from ..lfs.store import LfsStore
    from ..registry.view import RegistryView

log = logging.getLogger(__name__)

DEFAULT_REFRESH = 3.0


class ServeContext:
    """The registry behind a server, its current view and per-commit caches.

    Args:
        registry: the opened registry (its first view is read here: errors surface at start).
        refresh: seconds a view is served before the tip is read again.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, registry: Registry, *, refresh: float = DEFAULT_REFRESH, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.refresh = refresh
        self.clock = clock
        self.git_lock = threading.RLock()
        with self.git_lock:
            self.lfs: LfsStore = registry.layer_store()
            self._view = registry.fresh_view()
        self._checked = clock()
        self._memo: dict[tuple[str | None, str], Any] = {}

    @contextlib.contextmanager
    def reading(self) -> Iterator[RegistryView]:
        """Hold the git lock and yield the view (read again first if older than ``refresh``)."""
        with self.git_lock:
            if self.clock() - self._checked >= self.refresh:
                self._update()
            yield self._view

    def _update(self) -> None:
        self._checked = self.clock()
        try:
            view = self.registry.fresh_view(self._view)
        except LfsregError as exc:
            log.warning(
                "%s: the registry's tip could not be read; serving commit %s still: %s", self._view.label, self._view.snapshot.commit, exc
            )
            return
        if view is not self._view:
            log.info("%s: now serving commit %s", view.label, view.snapshot.commit)
            self._memo = {k: v for k, v in self._memo.items() if k[0] == view.snapshot.commit}
            self._view = view

    def invalidate(self) -> None:
        """Read the tip again on the next request (the write side calls it after a commit)."""
        with self.git_lock:
            self._checked = -float("inf")

    def memo(self, view: RegistryView, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per commit and ``key`` (call while :meth:`reading`)."""
        slot = (view.snapshot.commit, key)
        if slot not in self._memo:
            self._memo[slot] = compute()
        return self._memo[slot]


__all__ = ["DEFAULT_REFRESH", "ServeContext"]
