"""The cost part of :class:`lfsreg.api.Registry`: ``du``, ``config``, ``usage``, a push's limits and a pull's traffic.

A mix-in, kept apart so that api.py stays small.

Registry inherits :class:`CostMethods`; the work is in :mod:`lfsreg.ops.usage`,
:mod:`lfsreg.ops.limits` and :mod:`lfsreg.ops.hostusage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .registry.config import flatten, read_config, read_limits
from .registry.location import LocalBackend

if TYPE_CHECKING:
    from .hosts.meters import HostMeters
    from .ops.push import PushOptions
    from .ops.traffic import Traffic
    from .ops.usage import RegistryUsage
    from .progress import ProgressCallback
    from .registry.location import Backend, RemoteOptions
    from .registry.transaction import Publisher
    from .registry.view import RegistryView


class CostMethods:
    """``du``, ``config`` and ``usage``; the registry's plumbing comes from :class:`lfsreg.api.Registry`."""

    location: str
    label: str
    options: RemoteOptions

    if TYPE_CHECKING:

        def _open(self, *, create: bool = False) -> tuple[Backend, Publisher]: ...
        def _publisher(self, *, create: bool = False) -> Publisher: ...
        def view(self) -> RegistryView:
            """The registry as of its current commit."""
            ...

    def _costed(self, options: PushOptions, publisher: Publisher, view: RegistryView, dry_run: bool) -> PushOptions:
        """A push's options with the registry's limits, the estimate's memo and ``dry_run``."""
        from .ops.usage import memo_file

        memo = memo_file(self.options.cache_dir, publisher.backend.git)
        return replace(options, dry_run=dry_run, limits=read_limits(view), memo_path=memo)

    def _counted(self, traffic: Traffic | None, view: RegistryView, progress: ProgressCallback) -> ProgressCallback:
        """``progress``, counted into ``traffic`` (a pull's bytes from the host and the cache) if given."""
        if traffic is None:
            return progress
        traffic.local, traffic.transfer_limit = isinstance(self._open()[0], LocalBackend), read_limits(view).transfer
        return traffic.tap(progress)

    def du(self, image_globs: Sequence[str] = (), tag_globs: Sequence[str] = ()) -> RegistryUsage:
        """What the images take, from git alone (``lfsreg du``; :func:`lfsreg.ops.usage.registry_usage`).

        Rows for the tags and image names the globs select; the totals (live LFS bytes, LFS
        bytes any commit references -- what a host bills -- and git bytes) are always of the
        whole registry. A remote's whole history is fetched into its mirror first.
        """
        from .ops.usage import registry_usage  # here, as every command's code: see lfsreg.api

        return registry_usage(self._open()[0], self.label, self.options.cache_dir, image_globs=image_globs, tag_globs=tag_globs)

    def config(
        self, values: Mapping[str, str] | None = None, *, unset: Sequence[str] = (), preset: str | None = None, reset: bool = False
    ) -> dict[str, Any]:
        """The registry's settings (``limits.storage``…, dotted, in bytes); with changes, set them first in one commit.

        See :func:`lfsreg.ops.limits.configure`. Raises :class:`UsageError` for an unknown key,
        size or preset, :class:`NotARegistryError` for a damaged config file (``reset`` fixes it).
        """
        if not (values or unset or preset or reset):
            return flatten(read_config(self.view()))
        from .ops.limits import configure

        return configure(self._publisher(), dict(values or {}), unset=unset, preset=preset, reset=reset)

    def usage(self, *, kind: str | None = None, api_url: str | None = None) -> HostMeters:
        """The host's own meters for this repository, where the credentials allow (:mod:`lfsreg.ops.hostusage`).

        Raises :class:`UsageError` for a local registry, or a host whose API ``kind`` cannot be told.
        """
        from .ops.hostusage import host_usage  # here: it imports requests, which local commands never need

        return host_usage(self.location, self.options, kind=kind, api_url=api_url)


__all__ = ["CostMethods"]
