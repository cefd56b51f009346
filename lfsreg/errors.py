"""The exception tree of lfsreg.

Every error the library raises on purpose derives from :class:`LfsregError`. Classes also
subclass the fitting builtin so callers can catch either::

    LfsregError
     ├── UsageError (ValueError)            bad input from the caller: names, tags, references
     │    └── InvalidReference
     ├── NotFoundError (LookupError)        an image, tag, blob or LFS object that is not there
     │    ├── ImageNotFound
     │    └── BlobNotFound
     ├── InvalidImageError                  a source that is malformed, truncated or unsafe
     ├── DigestMismatchError                content that does not hash to what it claims
     ├── NotARegistryError                  a repository without the lfsreg format marker
     └── ConcurrentUpdateError              a ref that kept moving until retries ran out

Messages are one line, name the thing that is wrong and never contain credentials.
"""

from __future__ import annotations


class LfsregError(Exception):
    """Base class of every error lfsreg raises on purpose.

    Attributes:
        hint: an optional next step for the user, shown by the CLI after the message.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(LfsregError, ValueError):
    """The caller asked for something malformed (exit code 2)."""

    exit_code = 2


class InvalidReference(UsageError):
    """An image name, tag, digest or transport reference does not parse."""


class NotFoundError(LfsregError, LookupError):
    """Something the caller named does not exist."""


class ImageNotFound(NotFoundError):
    """No image or tag by that name in the registry or source."""


class BlobNotFound(NotFoundError):
    """A blob or LFS object the image needs is missing."""


class InvalidImageError(LfsregError):
    """An image source is malformed, truncated or unsafe to read."""


class DigestMismatchError(LfsregError):
    """Content does not match the digest or size it was declared with."""


class NotARegistryError(LfsregError):
    """The repository exists but is not an lfsreg registry."""


class ConcurrentUpdateError(LfsregError):
    """The registry ref kept moving under us until the retries ran out."""
