"""Basic transfers (git-lfs ``docs/api/basic-transfers.md``): one object, one attempt.

Uploads stream from a file with ``Content-Length``; downloads stream to a partial file in the
cache while hashing, resume with ``Range`` after an interruption (falling back to a full
download on 200 or 416) and are renamed into place only when oid and size match. Only the
action's own headers are sent: the batch API's credentials never reach a storage host.
Retrying is the queue's job; these functions classify failures for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable

import requests
import urllib3.exceptions

from ..digest import CHUNK
from ..formats.lfs_pointer import LfsObject
from .api import MEDIA_TYPE, Action, AuthError, ExpiredActionError, LfsError, RetriableError, error_from_response
from .cache import ObjectCache

Progress = Callable[[int], None]  # called with byte deltas; may be negative when a retry rolls back
MAX_VERIFY_ATTEMPTS = 3


def _check(resp: requests.Response, what: str) -> None:
    if resp.status_code in (200, 201, 202, 204, 206):
        return
    err = error_from_response(resp, what)
    status = getattr(err, "status", resp.status_code)  # a 404 is a NotFoundError, which has no status
    if isinstance(err, AuthError) or status == 403:
        # Signed hrefs answer 401/403 once they expire: ask the batch API again.
        raise ExpiredActionError(str(err), status=status)
    raise err


def upload(session: requests.Session, obj: LfsObject, path: str, action: Action, progress: Progress, timeout: float) -> None:
    """PUT ``path`` to the action's href (reopening the file on every call, so retries are safe)."""
    what = f"upload of sha256:{obj.oid} to {action.safe_href}"
    sent = 0

    class _Body:
        def __init__(self, f: object) -> None:
            self._f = f

        def read(self, n: int = -1) -> bytes:
            nonlocal sent
            data: bytes = self._f.read(n)  # type: ignore[attr-defined]
            sent += len(data)
            progress(len(data))
            return data

        def __len__(self) -> int:
            return obj.size

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(obj.size), **action.header}
    try:
        with open(path, "rb") as f:
            resp = session.put(action.href, data=_Body(f), headers=headers, timeout=timeout)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        progress(-sent)
        raise RetriableError(f"{what}: {type(exc).__name__}") from None
    with contextlib.closing(resp):
        if resp.status_code >= 300:
            progress(-sent)
        _check(resp, what)


def verify(session: requests.Session, obj: LfsObject, action: Action, timeout: float) -> None:
    """POST ``{oid, size}`` to the verify action (up to three attempts, as git-lfs does)."""
    what = f"verify of sha256:{obj.oid} at {action.safe_href}"
    headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE, **action.header}
    last: LfsError | None = None
    for _ in range(MAX_VERIFY_ATTEMPTS):
        try:
            resp = session.post(action.href, data=json.dumps({"oid": obj.oid, "size": obj.size}), headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            last = RetriableError(f"{what}: {type(exc).__name__}")
            continue
        with contextlib.closing(resp):
            try:
                _check(resp, what)
                return
            except RetriableError as exc:
                last = exc
    assert last is not None
    raise last


def download(session: requests.Session, obj: LfsObject, action: Action, cache: ObjectCache, progress: Progress, timeout: float) -> None:
    """GET the object into the cache, resuming a partial file; only a verified object is kept."""
    what = f"download of sha256:{obj.oid} from {action.safe_href}"
    part = os.path.join(cache.root, "incomplete", obj.oid + ".part")
    os.makedirs(os.path.dirname(part), exist_ok=True)
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have >= obj.size:
        os.unlink(part)
        have = 0
    headers = {"Accept-Encoding": "identity", **action.header}
    if have:
        headers["Range"] = f"bytes={have}-{obj.size - 1}"
    try:
        resp = session.get(action.href, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise RetriableError(f"{what}: {type(exc).__name__}") from None
    with contextlib.closing(resp):
        if have and resp.status_code == 416:
            os.unlink(part)  # the server disowns our partial copy: start over
            raise RetriableError(f"{what}: range not satisfiable; restarting", retry_after=0)
        _check(resp, what)
        h = hashlib.sha256()
        mode = "ab"
        if have and resp.status_code == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            with open(part, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            progress(have)
        else:
            mode, have = "wb", 0
        written = 0
        try:
            with open(part, mode) as out:
                for chunk in resp.raw.stream(CHUNK, decode_content=False):
                    if have + written + len(chunk) > obj.size:
                        raise LfsError(f"{what}: the server sent more than {obj.size} bytes")
                    out.write(chunk)
                    h.update(chunk)
                    written += len(chunk)
                    progress(len(chunk))
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError):
            progress(-(have + written))
            raise RetriableError(f"{what}: interrupted after {have + written} bytes; will resume") from None
        except BaseException:
            progress(-(have + written))
            raise
    if have + written != obj.size or h.hexdigest() != obj.oid:
        os.unlink(part)
        progress(-(have + written))
        raise RetriableError(f"{what}: got {have + written} bytes hashing to sha256:{h.hexdigest()}; discarded", retry_after=0)
    cache.adopt(obj, part)
