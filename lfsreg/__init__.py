"""lfsreg: a Docker/OCI image registry that lives in a git repository, layers in Git LFS."""

from __future__ import annotations

import logging

from .api import ImageSummary, Registry, TagInfo
from .digest import Digest
from .errors import (
    BlobNotFound,
    ConcurrentUpdateError,
    DigestMismatchError,
    ImageNotFound,
    InvalidImageError,
    InvalidReference,
    LfsregError,
    NotARegistryError,
    NotFoundError,
    UsageError,
)
from .ops.push import PushResult
from .progress import ProgressEvent
from .reference import ImageRef

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BlobNotFound",
    "ConcurrentUpdateError",
    "Digest",
    "DigestMismatchError",
    "ImageNotFound",
    "ImageRef",
    "ImageSummary",
    "InvalidImageError",
    "InvalidReference",
    "LfsregError",
    "NotARegistryError",
    "NotFoundError",
    "ProgressEvent",
    "PushResult",
    "Registry",
    "TagInfo",
    "UsageError",
    "__version__",
]
