"""Errors of the distribution API: the spec's codes, its JSON body, and lfsreg's errors mapped to them.

A handler raises :class:`ApiError` (or lets an :class:`lfsreg.errors.LfsregError` through);
the HTTP layer answers ``{"errors": [{"code", "message", "detail"}]}`` with the status the
code goes with (distribution-spec v1.1, "Error Codes"). Messages never carry credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import (
    AuthenticationError,
    BlobNotFound,
    ConcurrentUpdateError,
    CorruptContentError,
    ImageNotFound,
    InvalidImageError,
    InvalidReference,
    LfsregError,
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    RetriableError,
    UnreachableError,
    UsageError,
)
from ..manifest import dump_json

# The spec's error codes, with the status each is answered with.
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 404,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "TAG_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    # not in the spec's table, but what distribution answers for its own failures
    "UNAVAILABLE": 503,
    "UNKNOWN": 500,
}


@dataclass
class ApiError(Exception):
    """An answer in the spec's error form: ``code`` from :data:`STATUS`, ``status`` defaulting to the code's.

    ``headers`` are sent with it (``WWW-Authenticate`` for 401, ``Retry-After``…).
    """

    code: str
    message: str
    status: int = 0
    detail: object = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)
        if not self.status:
            self.status = STATUS.get(self.code, 500)

    def body(self) -> bytes:
        """The JSON body: one error."""
        entry: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return dump_json({"errors": [entry]})


def from_lfsreg(exc: LfsregError, *, manifest: bool = False) -> ApiError:
    """The answer for a library error; ``manifest``: a reference to a manifest was being resolved.

    Damaged or missing stored content is the server's failure (500), not the client's: a client
    told "unknown" would believe the content is not there.
    """
    text = str(exc)
    if isinstance(exc, CorruptContentError):
        return ApiError("UNKNOWN", f"stored content is damaged: {text}", 500)
    if isinstance(exc, BlobNotFound):
        return ApiError("MANIFEST_UNKNOWN" if manifest else "BLOB_UNKNOWN", text)
    if isinstance(exc, ImageNotFound):
        return ApiError("MANIFEST_UNKNOWN", text)
    if isinstance(exc, NotFoundError):
        return ApiError("NAME_UNKNOWN", text)
    if isinstance(exc, InvalidReference):
        return ApiError("NAME_INVALID", text)
    if isinstance(exc, InvalidImageError):
        return ApiError("MANIFEST_INVALID", text)
    if isinstance(exc, UsageError):
        return ApiError("UNSUPPORTED", text, 400)
    if isinstance(exc, LimitExceededError):
        return ApiError("DENIED", text)
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        # the git or LFS host refused the server's own credentials: the client can do nothing
        return ApiError("UNAVAILABLE", f"the registry's storage refused access: {text}", 503)
    if isinstance(exc, RetriableError):
        headers = {"Retry-After": str(max(1, int(exc.retry_after)))} if exc.retry_after else {}
        return ApiError("UNAVAILABLE", text, 503, headers=headers)
    if isinstance(exc, (UnreachableError, ConcurrentUpdateError)):
        return ApiError("UNAVAILABLE", text, 503)
    return ApiError("UNKNOWN", text, 500)


__all__ = ["STATUS", "ApiError", "from_lfsreg"]
