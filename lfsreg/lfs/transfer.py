"""The ``basic`` transfer adapter (git-lfs ``docs/api/basic-transfers.md``): one object, one attempt.

Uploads stream from a file reopened on every attempt, with ``Content-Length``; downloads
stream into the cache's partial file while hashing, resume with ``Range`` after an
interruption (starting over on 200 or 416) and are renamed into place only when oid and size
match (:class:`lfsreg.staging.VerifiedWriter`). Only the action's own headers are sent: the
batch API's credentials never reach a storage host. Every request has an overall deadline
(:class:`lfsreg.lfs.deadline.Deadline`): the API deadline plus the time the object takes at
``min_rate``. Retrying is the queue's job; this module classifies failures for it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from ..digest import CHUNK
from ..errors import (
    AuthenticationError,
    CorruptContentError,
    LfsregError,
    LimitExceededError,
    PermissionDeniedError,
    RetriableError,
    tls_error,
)
from ..formats.lfs_pointer import LfsObject
from .batch import MAX_ERROR_BODY, MEDIA_TYPE, BatchClient, BatchItem, ExpiredActionError, error_from_response
from .cache import ObjectCache
from .deadline import READ_ERRORS, Deadline, request_error, stalled
from .queue import Progress

if TYPE_CHECKING:
    from ..staging import VerifiedWriter


def _drain(resp: requests.Response) -> None:
    """Read the (small) body of a successful answer, so the connection goes back to the pool."""
    with contextlib.suppress(*READ_ERRORS):
        resp.raw.read(MAX_ERROR_BODY)


def _check(resp: requests.Response, what: str) -> None:
    """Raise the classified error for a failed response (a refused action counts as expired)."""
    if resp.status_code in (200, 201, 202, 204, 206):
        return
    err = error_from_response(resp, what)
    if isinstance(err, AuthenticationError | PermissionDeniedError) and not isinstance(err, LimitExceededError):
        # Signed hrefs answer 401/403 once they expire: ask the batch API again (not a host's "over quota").
        raise ExpiredActionError(str(err), status=resp.status_code)
    raise err


def _failed(exc: requests.RequestException, what: str, href: str, timeout: float) -> LfsregError:
    """A request that got no answer: a refused certificate is final, anything else worth a retry."""
    host = urlsplit(href).netloc.rsplit("@", 1)[-1]
    return tls_error(exc, what, host) or request_error(what, exc, timeout)


#: Bytes per piece of an upload body: small enough that a server taking it at the slowest rate
#: a transfer's deadline allows (16 KiB/s) answers each send within the socket timeout.
UPLOAD_CHUNK = 256 << 10


class _Body:
    """An upload body read from an open file, reporting progress and minding the deadline.

    An iterable of :data:`UPLOAD_CHUNK` pieces, not a file: urllib3 reads a file-like body 16 KiB
    at a time, and each piece costs a progress event and a deadline check (0.1 s of CPU for 256 MiB).
    """

    def __init__(self, f: object, size: int, progress: Progress, deadline: Deadline) -> None:
        self._f = f
        self._size = size
        self._progress = progress
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self._deadline.check()
            data: bytes = self._f.read(UPLOAD_CHUNK)  # type: ignore[attr-defined]
            if not data:
                return
            self._progress(len(data))
            yield data

    def __len__(self) -> int:
        return self._size


class _Pieces:
    """Writes the pieces of a download body to ``out`` a :data:`CHUNK` at a time.

    A chunked response comes in pieces of a few KiB, and each write costs a hash update, a
    write call and a progress event: 70,000 of each for 256 MiB from giftless.
    """

    def __init__(self, out: VerifiedWriter, progress: Progress) -> None:
        self._out = out
        self._progress = progress
        self._held: list[bytes] = []
        self._size = 0

    def add(self, piece: bytes) -> None:
        self._held.append(piece)
        self._size += len(piece)
        if self._size >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held, self._size = [], 0
        self._out.write(data)
        self._progress(len(data))


class BasicAdapter:
    """:class:`lfsreg.lfs.queue.Adapter` for HTTP: a :class:`BatchClient` and basic transfers.

    Args:
        client: the batch API client.
        session: the session for storage hrefs (no credentials of its own).
        timeout: seconds any single socket read may wait.
        deadline: seconds a whole request may take, plus ``size / min_rate`` for transfers.
        min_rate: the slowest transfer rate (bytes/s) the deadline allows for.
    """

    def __init__(self, client: BatchClient, session: requests.Session, *, timeout: float, deadline: float, min_rate: float) -> None:
        self.client = client
        self.session = session
        self.label = client.label
        self.timeout = timeout
        self.deadline = deadline
        self.min_rate = min_rate

    def _deadline(self, size: int, what: str) -> Deadline:
        return Deadline(self.deadline + size / self.min_rate, what)

    def end(self) -> None:
        """Nothing to release: pooled HTTP connections are kept for the next calls."""

    def batch(self, operation: str, objects: Sequence[LfsObject], ref: str | None) -> list[BatchItem]:
        """One batch API call."""
        return self.client.batch(operation, objects, ref=ref)

    def upload(self, item: BatchItem, path: str, progress: Progress) -> None:
        """PUT the file to the upload href."""
        obj, action = item.obj, item.actions["upload"]
        what = f"upload of sha256:{obj.oid} to {action.safe_href}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(obj.size), **action.header}
        with self._deadline(obj.size, what) as deadline:
            try:
                with open(path, "rb") as f:
                    resp = self.session.put(
                        action.href, data=_Body(f, obj.size, progress, deadline), headers=headers, timeout=self.timeout, stream=True
                    )
            except requests.RequestException as exc:
                raise _failed(exc, what, action.href, self.timeout) from None
            with resp:
                deadline.watch(resp)
                _check(resp, what)
                _drain(resp)

    def verify(self, item: BatchItem) -> None:
        """POST ``{oid, size}`` to the verify action if there is one: one attempt.

        Any failure is retriable: the upload happened, so the object may well be there (or is
        being written by another uploader: giftless answers 422 meanwhile). The queue then asks
        the batch API again, which either reports the object present or gives new actions.
        """
        if "verify" not in item.actions:
            return
        obj, action = item.obj, item.actions["verify"]
        what = f"verify of sha256:{obj.oid} at {action.safe_href}"
        headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE, **action.header}
        with Deadline(self.deadline, what) as deadline:
            try:
                resp = self.session.post(
                    action.href, data=json.dumps({"oid": obj.oid, "size": obj.size}), headers=headers, timeout=self.timeout, stream=True
                )
            except requests.RequestException as exc:
                raise _failed(exc, what, action.href, self.timeout) from None
            with resp:
                deadline.watch(resp)
                try:
                    _check(resp, what)
                except RetriableError:
                    raise
                except LfsregError as exc:
                    raise RetriableError(str(exc), status=resp.status_code) from None
                _drain(resp)

    def download(self, item: BatchItem, cache: ObjectCache, progress: Progress) -> None:
        """GET the object into the cache, resuming a partial file; only a verified object is kept."""
        obj, action = item.obj, item.actions["download"]
        what = f"download of sha256:{obj.oid} from {action.safe_href}"
        with cache.writer(obj, what, resume=True) as out, self._deadline(obj.size - out.offset, what) as deadline:
            headers = {"Accept-Encoding": "identity", **action.header}
            if out.offset:
                headers["Range"] = f"bytes={out.offset}-{obj.size - 1}"
            try:
                resp = self.session.get(action.href, headers=headers, stream=True, timeout=self.timeout)
            except requests.RequestException as exc:
                raise _failed(exc, what, action.href, self.timeout) from None
            with resp:
                deadline.watch(resp)
                if out.offset and resp.status_code == 416:
                    out.discard()  # the server disowns our partial copy: start over
                    raise RetriableError(f"{what}: range not satisfiable; restarting", retry_after=0)
                _check(resp, what)
                if out.offset and resp.status_code == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {out.offset}-"):
                    progress(out.offset)
                elif out.offset:
                    out.restart()
                sink = _Pieces(out, progress)
                try:
                    try:
                        for chunk in resp.raw.stream(CHUNK, decode_content=False):
                            sink.add(chunk)
                    except READ_ERRORS:
                        sink.flush()  # a resume asks for what follows the last byte received
                        raise
                    sink.flush()
                except CorruptContentError:
                    out.discard()
                    raise RetriableError(f"{what}: the server sent more than {obj.size} bytes; discarded", retry_after=0) from None
                except READ_ERRORS as exc:
                    if deadline.fired:
                        raise deadline.error() from None
                    how = "stalled" if stalled(exc) else "interrupted"
                    raise RetriableError(f"{what}: {how} after {out.offset} bytes; will resume") from None
            try:
                out.commit()
            except CorruptContentError as exc:
                raise RetriableError(f"{exc}; discarded", retry_after=0) from None
