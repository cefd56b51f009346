"""The maintenance part of :class:`lfsreg.api.Registry`: ``verify`` and ``copy``.

A mix-in, kept apart so that api.py stays small; the work is in :mod:`lfsreg.ops.verify` and
:mod:`lfsreg.ops.copy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .progress import ProgressCallback, no_progress
from .registry.location import fresh_local_path

if TYPE_CHECKING:
    from .lfs.store import LfsStore
    from .ops.copy import CopyResult
    from .ops.verify import VerifyReport
    from .registry.location import Backend, RemoteOptions
    from .registry.transaction import Publisher
    from .registry.view import RegistryView


class MaintainMethods:
    """``verify`` and ``copy``; the registry's plumbing comes from :class:`lfsreg.api.Registry`."""

    location: str
    options: RemoteOptions
    _backend: Backend | None

    if TYPE_CHECKING:

        def _publisher(self, *, create: bool = False) -> Publisher: ...
        def _lfs(self) -> LfsStore: ...
        def _undo_create(self, fresh: tuple[str, bool]) -> None: ...
        def close(self) -> None:
            """Release the repository's files."""
            ...

        def view(self) -> RegistryView:
            """The registry as of its current commit."""
            ...

    def verify(self, *, deep: bool = False, progress: ProgressCallback = no_progress) -> VerifyReport:
        """Check every live tag, what it needs, and the LFS objects behind it: the problems, one each (:mod:`lfsreg.ops.verify`)."""
        from .ops.verify import verify_registry

        return verify_registry(self.view(), self._lfs(), deep=deep, progress=progress)

    def copy(
        self,
        dest: str | MaintainMethods,
        images: Sequence[str] = (),
        *,
        progress: ProgressCallback = no_progress,
        object_limit: int | None = None,
    ) -> CopyResult:
        """Copy ``images`` (``NAME:TAG``, ``NAME``; default every tag) into ``dest``, moving what it lacks (:mod:`lfsreg.ops.copy`).

        Layers over ``object_limit`` (default ``dest``'s ``limits.object``) are chunked there; a ``dest`` the copy created
        is removed if it fails. Raises what :meth:`pull` and :meth:`push` do; ``NotFoundError``: no tags to copy.
        """
        from .ops.copy import copy_images

        target = dest if isinstance(dest, MaintainMethods) else type(self)(dest, options=self.options)  # type: ignore[call-arg]
        fresh = fresh_local_path(target.location) if target._backend is None else None
        try:
            view = self.view()
            return copy_images(
                view, self._lfs(), target._publisher(create=True), target._lfs(), list(images), progress=progress, object_limit=object_limit
            )
        except BaseException:
            if fresh is not None:
                target._undo_create(fresh)
            raise
        finally:
            if target is not dest:
                target.close()
