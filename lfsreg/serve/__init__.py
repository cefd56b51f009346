"""``lfsreg serve``: the OCI distribution API (v1.1) over an lfsreg registry, for every container client.

Layers of the package, each a module: :mod:`.http` (requests and streamed responses),
:mod:`.router` (paths to handlers; the read/write interfaces), :mod:`.auth`, :mod:`.state`
(the registry kept fresh), :mod:`.read` and :mod:`.blobs` (the read side), :mod:`.app`
(:class:`RegistryServer`, which wires them). The library never prints: requests are logged
to ``lfsreg.serve.access``.
"""

from __future__ import annotations

from .app import RegistryServer, ServeOptions

__all__ = ["RegistryServer", "ServeOptions"]
