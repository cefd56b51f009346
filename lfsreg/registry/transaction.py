"""Publishing changes to the registry: one commit, compare-and-swap, rebase and retry."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ..errors import ConcurrentUpdateError
from ..git.store import GitStore
from . import hints, layout
from .view import RegistryView

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 50
SUBJECT_REFS = 20  # the references a commit's subject line names; its body lists every one


def subject_refs(refs: Sequence[str]) -> str:
    """``refs`` for a commit's subject line: the first :data:`SUBJECT_REFS`, then how many more.

    The body of the commit names them all; a subject naming every tag of one push of 30,000
    images x 3 tags was one line of 1.7 MB, which ``git log --oneline`` and ``lfsreg history``
    print whole.
    """
    shown = ", ".join(refs[:SUBJECT_REFS])
    return shown + (f" and {len(refs) - SUBJECT_REFS} more" if len(refs) > SUBJECT_REFS else "")


# Given the view at the current tip, return the path changes to apply (bytes = write, None = delete).
ChangeBuilder = Callable[[RegistryView], Mapping[str, bytes | None]]


class Backend(Protocol):
    """Where a registry's commits live.

    ``git`` is the object store commits are read from and built in (the repository itself for
    a local registry, a mirror for a remote one); ``tip()`` returns the current tip (fetching
    it into ``git`` first for a remote); ``swap(old, new)`` moves ``main`` atomically and
    returns ``False`` if it no longer pointed at ``old``.
    """

    label: str

    @property
    def git(self) -> GitStore:
        """The object store commits are read from and built in."""
        ...

    def tip(self) -> str | None:
        """The current commit of ``main`` (``None`` before the first commit)."""
        ...

    def swap(self, old: str | None, new: str) -> bool:
        """Compare-and-swap ``main`` from ``old`` to ``new``."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...

    def complete(self, tip: str) -> None:
        """Make ``git`` hold every object of ``tip``'s history (a remote's mirror may hold only what was read)."""
        ...


class Publisher:
    """Reads the registry at its tip and publishes change sets onto it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.label = backend.label
        # The tip the last view() read, kept for the next publish's first attempt: fetching it
        # again costs a remote round trip, and if it moved since, the swap fails and the loop
        # re-reads it as for any other race.
        self._seen: tuple[str | None] | None = None

    def close(self) -> None:
        """Release the backend's files and connections."""
        self.backend.close()

    def view(self) -> RegistryView:
        """The registry at the current tip."""
        head = self.backend.tip()
        self._seen = (head,)
        return RegistryView(self.backend.git.snapshot(head), self.label)

    def publish(self, build: ChangeBuilder, message: str) -> str | None:
        """Commit ``build(view)`` on top of the current tip; retry from the new tip if it moved.

        The first attempt builds on the tip the last :meth:`view` read, if any (no second
        fetch); ``build`` is called again on every retry with the new tip, so changes that depend on
        the current state (deleting a tag that still exists) are recomputed; content-addressed
        paths are identical for every pusher, so re-applying them is safe. Returns the new
        commit id, or ``None`` when there was nothing to change.
        """
        git = self.backend.git
        seen, self._seen = self._seen, None
        for attempt in range(MAX_ATTEMPTS):
            head = seen[0] if seen is not None and attempt == 0 else self.backend.tip()
            view = RegistryView(git.snapshot(head), self.label)
            changes = dict(build(view))
            changes.update(hints.following(view.snapshot, view.layout, self.label, changes))  # names whose tags change
            if view.empty or view.snapshot.read(layout.GITATTRIBUTES) is None:
                changes.setdefault(layout.MARKER, view.layout.marker)  # a new registry's, or the one it has
                changes.setdefault(layout.GITATTRIBUTES, layout.GITATTRIBUTES_BYTES)
            changes = {p: c for p, c in changes.items() if c is None or view.snapshot.read(p) != c}
            changes = {p: c for p, c in changes.items() if c is not None or view.snapshot.exists(p)}
            if not changes:
                return None
            ids = {p: (git.write_blob(c) if c is not None else None) for p, c in changes.items()}
            commit = git.make_commit(head, ids, message)
            if self.backend.swap(head, commit):
                log.debug("published %s on %s after %d attempt(s)", commit, head, attempt + 1)
                return commit
            delay = min(0.5, 0.01 * 2**attempt) * (0.5 + random.random())
            log.debug("%s moved under us; re-applying on the new tip in %.3f s", self.label, delay)
            time.sleep(delay)
        raise ConcurrentUpdateError(
            f"{self.label}: the registry kept changing; gave up after {MAX_ATTEMPTS} attempts",
            hint="other pushes kept landing first; run the command again (nothing of this one was published)",
        )
