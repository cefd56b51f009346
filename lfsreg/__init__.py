"""lfsreg: a Docker/OCI image registry that lives in a git repository, layers in Git LFS."""

from __future__ import annotations

import logging

from .api import ImageSummary, Registry, TagInfo
from .digest import Digest
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
    LocalStorageError,
    NotARegistryError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RepositoryNotFound,
    RetriableError,
    UnreachableError,
    UsageError,
)
from .ops.push import PushResult
from .progress import ProgressEvent
from .reference import ImageRef

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AuthenticationError",
    "BlobNotFound",
    "ConcurrentUpdateError",
    "CorruptContentError",
    "Digest",
    "DigestMismatchError",
    "ImageNotFound",
    "ImageRef",
    "ImageSummary",
    "InvalidImageError",
    "InvalidReference",
    "LfsregError",
    "LocalStorageError",
    "NotARegistryError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgressEvent",
    "ProtocolError",
    "PushResult",
    "Registry",
    "RepositoryNotFound",
    "RetriableError",
    "TagInfo",
    "UnreachableError",
    "UsageError",
    "__version__",
]
