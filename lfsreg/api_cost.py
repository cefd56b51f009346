"""The cost commands of :class:`lfsreg.api.Registry`: ``du``, ``config`` and ``usage`` (a mix-in, kept apart so api.py stays small).

Registry inherits :class:`CostMethods`; the work is in :mod:`lfsreg.ops.usage`,
:mod:`lfsreg.ops.limits` and :mod:`lfsreg.ops.hostusage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .ops.limits import configure
from .ops.usage import RegistryUsage, registry_usage
from .registry.config import flatten, read_config

if TYPE_CHECKING:
    from .hosts.meters import HostMeters
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

    def du(self, image_globs: Sequence[str] = (), tag_globs: Sequence[str] = ()) -> RegistryUsage:
        """What the images take, from git alone (``lfsreg du``; :func:`lfsreg.ops.usage.registry_usage`).

        Rows for the tags and image names the globs select; the totals (live LFS bytes, LFS
        bytes any commit references -- what a host bills -- and git bytes) are always of the
        whole registry. A remote's whole history is fetched into its mirror first.
        """
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
        return configure(self._publisher(), dict(values or {}), unset=unset, preset=preset, reset=reset)

    def usage(self, *, kind: str | None = None, api_url: str | None = None) -> HostMeters:
        """The host's own meters for this repository, where the credentials allow (:mod:`lfsreg.ops.hostusage`).

        Raises :class:`UsageError` for a local registry, or a host whose API ``kind`` cannot be told.
        """
        from .ops.hostusage import host_usage  # here: it imports requests, which local commands never need

        return host_usage(self.location, self.options, kind=kind, api_url=api_url)


__all__ = ["CostMethods"]
