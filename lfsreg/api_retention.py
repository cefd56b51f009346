"""The history and retention part of :class:`lfsreg.api.Registry`: ``history``, ``rollback``, ``prune``, ``gc``.

A mix-in, kept apart so that api.py stays small; the work is in :mod:`lfsreg.ops.history`,
:mod:`lfsreg.ops.prune` and :mod:`lfsreg.ops.gc` (imported when used: most commands need none of it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ops.gc import GcResult
    from .ops.history import RollbackResult, TagHistory
    from .ops.prune import PrunePolicy, PruneResult
    from .registry.location import Backend
    from .registry.transaction import Publisher


class RetentionMethods:
    """What a tag named and pointing it back; untagging by policy and collecting; plumbing from :class:`lfsreg.api.Registry`."""

    label: str

    if TYPE_CHECKING:

        def _open(self, *, create: bool = False) -> tuple[Backend, Publisher]: ...

    def history(self, image: str) -> TagHistory:
        """Every digest ``NAME:TAG`` (every tag of a bare ``NAME``) named, newest first (:func:`lfsreg.ops.history.image_history`).

        Raises:
            ImageNotFound: no such tag was ever set; NotFoundError: an empty registry; UsageError: a digest.
        """
        from .ops.history import image_history

        return image_history(self._open()[0], self.label, image)

    def rollback(self, image: str, *, to: str | None = None, steps: int | None = None) -> RollbackResult:
        """Point ``NAME:TAG`` back at ``to`` or at what it named ``steps`` changes ago, in one commit.

        Raises (:func:`lfsreg.ops.history.rollback`):
            ImageNotFound: no such history or target; BlobNotFound: the target's layers are gone.
            ConcurrentUpdateError: the tag moved meanwhile (nothing is written).
        """
        from .ops.history import rollback

        backend, publisher = self._open()
        return rollback(backend, publisher, image, to=to, steps=steps)

    def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneResult:
        """Untag what ``policy`` selects in one commit; say what it frees (:func:`lfsreg.ops.prune.prune_tags`).

        Raises:
            UsageError: a policy that selects by nothing.
        """
        from .ops.prune import prune_tags

        backend, publisher = self._open()
        return prune_tags(backend, publisher, policy, dry_run=dry_run)

    def gc(self, *, keep_history: float = 0.0, grace: float = 3600.0, dry_run: bool = False) -> GcResult:
        """Rewrite the registry branch to what tags need; free what the location allows (:func:`lfsreg.ops.gc.collect_garbage`)."""
        from .ops.gc import collect_garbage

        return collect_garbage(self._open()[0], self.label, keep_history=keep_history, grace=grace, dry_run=dry_run)
