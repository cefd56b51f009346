"""The exception tree of lfsreg: one class per thing a caller does about a failure.

Every error the library raises on purpose derives from :class:`LfsregError` (never raised
bare). Classes also subclass the fitting builtin, so callers can catch either::

    LfsregError                                  exit 1 unless said otherwise
     ├── UsageError (ValueError)                 exit 2: fix the command or the call
     │    └── InvalidReference                   a name, tag, digest or transport reference
     ├── AuthenticationError (PermissionError)   give (other) credentials: missing, refused, 401
     ├── PermissionDeniedError (PermissionError) ask for access: the credentials may not do this, 403
     │    ├── LimitExceededError                 free space or raise the limit: a storage, object-size
     │    │                                      or transfer limit (the registry's own, or the host's)
     │    └── SignatureError                     sign the image, or trust its signer: no valid signature
     │                                           by a trusted key (pull --verify-key, the trust policy)
     ├── NotFoundError (LookupError)             check the name: it is not there, 404
     │    ├── RepositoryNotFound                 no repository at that location
     │    ├── ImageNotFound                      no image or tag by that name
     │    └── BlobNotFound                       a blob or LFS object the image needs
     ├── RetriableError (ConnectionError)        try again later: 5xx, 429, a cut or a stall
     │                                           (``status``, ``retry_after`` in seconds)
     ├── UnreachableError (ConnectionError)      check the address, or start the service
     ├── ProtocolError                           a peer broke its protocol: report it to its owner
     ├── InvalidImageError (ValueError)          the input image or layout is malformed or unsafe
     ├── CorruptContentError                     bytes that do not hash to what they claim
     ├── LocalStorageError (OSError)             free space, or remove the stale lock it names
     ├── NotARegistryError                       the repository holds no lfsreg registry
     └── ConcurrentUpdateError                   the registry kept moving: run the command again

:func:`error_for_status` is the one mapping from an HTTP status to this tree; the LFS API,
smart HTTP and the Docker engine API all use it. Messages are one line, name the thing that
is wrong and never contain credentials.
"""

from __future__ import annotations


class LfsregError(Exception):
    """Base class of every error lfsreg raises on purpose; never raised itself.

    Attributes:
        hint: an optional next step for the user, shown by the CLI after the message.
        exit_code: the process exit code the CLI uses for it.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Exception.__init__ directly: OSError-derived subclasses would read a second
        # positional argument as a file name.
        Exception.__init__(self, message)
        self.hint = hint

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(LfsregError, ValueError):
    """The caller asked for something malformed (exit code 2)."""

    exit_code = 2


class InvalidReference(UsageError):
    """An image name, tag, digest or transport reference does not parse."""


class AuthenticationError(LfsregError, PermissionError):
    """Credentials were missing, refused or unusable (HTTP 401, SSH authentication)."""


class PermissionDeniedError(LfsregError, PermissionError):
    """The credentials were accepted but may not do this (HTTP 403, a read-only deploy key)."""


class LimitExceededError(PermissionDeniedError):
    """The operation would go over a limit: the registry's ``limits.*``, or the host's quota or object size."""


class SignatureError(PermissionDeniedError):
    """An image has no valid signature by a key the caller (``--verify-key``) or the registry's trust policy trusts."""


class NotFoundError(LfsregError, LookupError):
    """Something the caller named does not exist."""


class RepositoryNotFound(NotFoundError):
    """No repository at the location (or the credentials cannot see it)."""


class ImageNotFound(NotFoundError):
    """No image or tag by that name in the registry or source."""


class BlobNotFound(NotFoundError):
    """A blob or LFS object the image needs is missing."""


class RetriableError(LfsregError, ConnectionError):
    """A transient failure worth retrying: 5xx, 429, a cut connection, a stalled response.

    Attributes:
        status: the HTTP status, or 0 when the connection failed.
        retry_after: seconds the server asked us to wait, if it said.
    """

    def __init__(self, message: str, *, status: int = 0, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after


class UnreachableError(LfsregError, ConnectionError):
    """A service could not be reached at all (refused, no such host, no socket)."""


class ProtocolError(LfsregError):
    """A server or peer answered outside its protocol (malformed JSON, missing fields, bad framing)."""


class InvalidImageError(LfsregError, ValueError):
    """An image source or destination is malformed, truncated or unsafe to read."""


class CorruptContentError(LfsregError):
    """Content does not match the digest or size it was declared with."""


DigestMismatchError = CorruptContentError  # the name of earlier releases


class LocalStorageError(LfsregError, OSError):
    """This machine's disk or repository cannot be written: full, read-only, or a stale lock."""


class NotARegistryError(LfsregError):
    """The repository exists but is not an lfsreg registry."""


class ConcurrentUpdateError(LfsregError):
    """The registry ref kept moving under us until the retries ran out."""


_RETRIABLE = frozenset({408, 429, 500, 502, 503, 504, 509})


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    hint: str | None = None,
) -> LfsregError:
    """The error for an HTTP ``status`` (git-lfs ``lfshttp/errors.go``); ``message`` names the request.

    A host's answer that a limit is reached -- 403 or 422 naming a quota or size ("This repository
    is over its data quota", GitHub), 413, 507 -- → :class:`LimitExceededError`, naming the limit.
    Otherwise 401 → :class:`AuthenticationError`, 403 → :class:`PermissionDeniedError`, 404 and 410 →
    :class:`NotFoundError`, 408/429/5xx (not 501, 505 or 507) → :class:`RetriableError`,
    anything else → :class:`ProtocolError`. The caller adds the server's message to ``message``.
    """
    limit = _host_limit(status, message)
    if limit is not None:
        return limit
    if status == 401:
        return AuthenticationError(message, hint=hint or "check the credentials (LFSREG_USERNAME/LFSREG_TOKEN, netrc, or the URL)")
    if status == 403:
        return PermissionDeniedError(message, hint=hint or "the credentials can read but not write this repository, or not read it at all")
    if status in (404, 410):
        return NotFoundError(message, hint=hint or "check the URL and that the credentials can see the repository")
    if status in _RETRIABLE or status >= 520:
        return RetriableError(message, status=status, retry_after=retry_after, hint=hint)
    return ProtocolError(message, hint=hint)


_QUOTA_WORDS = ("quota", "size limit", "storage limit", "out of storage", "insufficient storage")
_SIZE_WORDS = ("too large", "too big", "file size", "max size", "maximum size", "larger than", "size must be")


def _host_limit(status: int, message: str) -> LimitExceededError | None:
    """The :class:`LimitExceededError` for a host's over-quota or over-size answer, else ``None``."""
    low = message.lower()
    quota = status == 507 or (status in (403, 422) and any(w in low for w in _QUOTA_WORDS))
    if quota:
        return LimitExceededError(
            f"{message} -- the host's LFS quota is used up (storage or monthly downloads; GitHub Free: 10 GiB each)",
            hint="see what the registry takes with `lfsreg du REPO`; free space with `lfsreg prune` and `lfsreg gc`, "
            "then (GitHub keeps LFS storage until the repository is deleted) move to a fresh repository with "
            "`lfsreg copy`, or buy more storage from the host",
        )
    if status == 413 or (status in (403, 422) and any(w in low for w in _SIZE_WORDS)):
        return LimitExceededError(
            f"{message} -- an object is larger than the host accepts (GitHub: 2 GB on Free/Pro, 4 GB Team, 5 GB Enterprise Cloud)",
            hint="set the host's object limit, e.g. `lfsreg config REPO --preset github-free` or `lfsreg config REPO limits.object 2GB`",
        )
    return None


def tls_error(exc: BaseException, what: str, host: str) -> UnreachableError | None:
    """The error for a TLS handshake that failed somewhere in ``exc``'s chain, else ``None``.

    Finds the :class:`ssl.SSLError` through causes, contexts, urllib3's ``reason`` and
    exception arguments (requests and dulwich wrap it two or three deep). The message names
    ``what`` failed, the host (the one the handshake was with, e.g. after a redirect; else
    ``host``) and what is wrong with its certificate, in OpenSSL's words ("certificate has
    expired", "unable to get local issuer certificate"); the hint says what to do about it.
    Not retriable: the next attempt meets the same certificate.
    """
    import ssl  # only once a TLS connection failed: importing ssl is not free at start-up

    seen: set[int] = set()
    todo: list[object] = [exc]
    failure: ssl.SSLError | None = None
    while todo and failure is None:
        cur = todo.pop(0)
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            failure = cur
            break
        # instance attributes only: some of urllib3's exceptions warn when a property is read
        attrs = vars(cur)
        pool = attrs.get("pool")  # urllib3's MaxRetryError: the pool of the failed host
        pool_host, pool_port = getattr(pool, "host", None), getattr(pool, "port", None)
        if pool_host:
            host = f"{pool_host}:{pool_port}" if pool_port else str(pool_host)
        url = getattr(attrs.get("request"), "url", None)  # requests: the request that failed
        if isinstance(url, str) and "//" in url:
            host = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        todo.extend([cur.__cause__, cur.__context__, attrs.get("reason"), *cur.args])
    if failure is None:
        return None
    if isinstance(failure, ssl.SSLCertVerificationError):
        problem = str(failure.verify_message or failure.reason or "verification failed").rstrip(".")
        low = problem.lower()
        if "expired" in low or "not yet valid" in low:
            hint = "the server's certificate is outside its validity period: renew it on the server (or check this machine's clock)"
        elif "hostname" in low or "ip address mismatch" in low:
            hint = "use a host name the certificate names"
        else:
            hint = "pass the CA that signed it with --ca-bundle FILE (or LFSREG_CA_BUNDLE)"
        return UnreachableError(f"{what}: TLS certificate of {host} not accepted: {problem}", hint=hint)
    reason = failure.reason or (str(failure.args[1]) if len(failure.args) > 1 else type(failure).__name__)
    return UnreachableError(f"{what}: TLS handshake with {host} failed: {reason}", hint="check that the URL's port speaks HTTPS")
