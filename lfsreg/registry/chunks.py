"""Which layers a push stores as chunks: the registry's ``limits.object`` (docs/format.md).

The limit itself is kept with the registry's other limits (``lfsreg config REPO limits.object
2GB``, :mod:`lfsreg.registry.config`); this module only asks for it, through the one function
that module provides, so nothing else here knows where limits are stored.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from .view import RegistryView

log = logging.getLogger(__name__)


def configured_object_limit(view: RegistryView) -> int | None:
    """``limits.object`` of the registry at ``view`` in bytes; ``None`` when it sets none.

    Read through ``lfsreg.registry.config.object_limit(view)``; a build of lfsreg without that
    module knows no limits.
    """
    try:
        config = importlib.import_module(f"{__package__}.config")
    except ModuleNotFoundError:
        return None
    reader: Callable[[RegistryView], int | None] | None = getattr(config, "object_limit", None)
    if reader is None:
        log.debug("lfsreg.registry.config has no object_limit(): no object size limit")
        return None
    return reader(view)
