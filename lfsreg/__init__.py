"""lfsreg: a Docker/OCI image registry that lives in a git repository, layers in Git LFS."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from .errors import (
    AuthenticationError,
    BlobNotFound,
    ConcurrentUpdateError,
    CorruptContentError,
    DigestMismatchError,
    ImageNotFound,
    InvalidImageError,
    InvalidReference,
    LfsregError,
    LimitExceededError,
    LocalStorageError,
    NotARegistryError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RepositoryNotFound,
    RetriableError,
    SignatureError,
    UnreachableError,
    UsageError,
)

if TYPE_CHECKING:
    from .api import ImageSummary, Registry, TagInfo
    from .compression import ALGORITHMS as COMPRESSION_ALGORITHMS
    from .compression import DEFAULT as DEFAULT_COMPRESSION
    from .digest import Digest
    from .keys import DEFAULT_COMMENT as DEFAULT_KEY_COMMENT
    from .ops.prune import PrunePolicy
    from .ops.push import PushResult
    from .ops.usage import RegistryUsage
    from .progress import ProgressEvent
    from .reference import ImageRef
    from .serve import RegistryServer, ServeOptions

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that ``import lfsreg.cli`` -- every command, even
# ``lfsreg --help`` -- does not pay for git, LFS, SSH and image code it may not need.
_LAZY = {
    "ImageSummary": ("api", "ImageSummary"),
    "Registry": ("api", "Registry"),
    "TagInfo": ("api", "TagInfo"),
    "Digest": ("digest", "Digest"),
    "PushResult": ("ops.push", "PushResult"),
    "VerifyReport": ("ops.verify", "VerifyReport"),
    "CopyResult": ("ops.copy", "CopyResult"),
    "PrunePolicy": ("ops.prune", "PrunePolicy"),
    "RegistryUsage": ("ops.usage", "RegistryUsage"),
    "ProgressEvent": ("progress", "ProgressEvent"),
    "ImageRef": ("reference", "ImageRef"),
    "RegistryServer": ("serve", "RegistryServer"),  # lfsreg serve: the OCI distribution API
    "ServeOptions": ("serve", "ServeOptions"),
    # the defaults the CLI shows in its help (also in lfsreg.api)
    "COMPRESSION_ALGORITHMS": ("compression", "ALGORITHMS"),
    "DEFAULT_COMPRESSION": ("compression", "DEFAULT"),
    "DEFAULT_KEY_COMMENT": ("keys", "DEFAULT_COMMENT"),
}


def __getattr__(name: str) -> object:
    """``lfsreg.Registry`` and the rest of the public API, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "COMPRESSION_ALGORITHMS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_KEY_COMMENT",
    "AuthenticationError",
    "BlobNotFound",
    "ConcurrentUpdateError",
    "CopyResult",
    "CorruptContentError",
    "Digest",
    "DigestMismatchError",
    "ImageNotFound",
    "ImageRef",
    "ImageSummary",
    "InvalidImageError",
    "InvalidReference",
    "LfsregError",
    "LimitExceededError",
    "SignatureError",
    "LocalStorageError",
    "NotARegistryError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgressEvent",
    "ProtocolError",
    "PrunePolicy",
    "PushResult",
    "VerifyReport",
    "Registry",
    "RegistryServer",
    "RegistryUsage",
    "RepositoryNotFound",
    "RetriableError",
    "ServeOptions",
    "TagInfo",
    "UnreachableError",
    "UsageError",
    "__version__",
]
