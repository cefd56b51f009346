"""The serving part of :class:`lfsreg.api.Registry`: what ``lfsreg serve`` reads and writes through.

A mix-in, kept apart so that api.py stays small; the server itself is :mod:`lfsreg.serve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lfs.store import LfsStore
    from .registry.location import Backend
    from .registry.transaction import Publisher
    from .registry.view import RegistryView


class ServeMethods:
    """Access to the registry's tip, publisher and layer store for a long-running server."""

    _backend: Backend | None

    if TYPE_CHECKING:

        def _publisher(self, *, create: bool = False) -> Publisher: ...
        def _lfs(self) -> LfsStore: ...

    def fresh_view(self, known: RegistryView | None = None) -> RegistryView:
        """The registry at its current tip; ``known`` itself when the tip has not moved (its caches kept).

        For a remote registry this is one ref query when nothing changed (and a fetch of what is
        new otherwise); for a local one, a read of the branch's ref.
        """
        publisher = self._publisher()
        tip = publisher.backend.tip()
        if known is not None and known.snapshot.commit == tip:
            return known
        from .registry.view import RegistryView

        return RegistryView(publisher.backend.git.snapshot(tip), publisher.label)

    def publisher(self) -> Publisher:
        """The registry's publisher: commits go through it (compare-and-swap, re-applied when the branch moved)."""
        return self._publisher()

    def layer_store(self) -> LfsStore:
        """The store of the registry's layers (local, or a remote's through the local cache)."""
        return self._lfs()


__all__ = ["ServeMethods"]
