"""A blob upload in chunks (``PATCH`` with ``Content-Range``), resumed where the registry says after a cut.

distribution-spec v1.1, "Pushing a blob in chunks": after the ``POST`` that opens a session,
each chunk is one ``PATCH`` to the session's latest ``Location`` with ``Content-Range:
START-END`` (inclusive, no unit) and ``Content-Length``; the registry answers ``202`` with the
next ``Location`` and ``Range: 0-LAST``. A final ``PUT ?digest=`` (no body here) closes it.

Memory stays bounded by one chunk: a chunk is read from the verifying reader into memory, so
that a failed ``PATCH`` can be sent again. After a retriable failure (cut connection, 5xx,
429) or a ``416`` the session's offset is asked for (``GET`` on the session, its ``Range``)
and the rest of the current chunk is sent from there. A registry that cannot say (the
distribution registry 2.8 answers ``404 BLOB_UPLOAD_INVALID`` once a ``PATCH`` was cut: the
state signed into its ``Location`` no longer matches), or an offset outside the chunk in
memory, raises :class:`SessionLost`: the caller starts the upload again. A registry that
answers a chunk with an error (400, 405, 413...) or a ``416`` without taking any of it (GHCR
caps a request's size) raises :class:`ChunksRefused`: the caller sends the blob in one streamed
``PUT`` instead. A ``Range`` that lags behind the bytes sent (ECR's) is not an error: the
final ``PUT``'s digest check is what counts. The reader
is finished (size and digest verified) before the final ``PUT``: bytes that do not match
never complete a blob; the session is deleted (best effort) on any failure.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable

import requests

from ..errors import LfsregError, LimitExceededError, NotFoundError, ProtocolError, RetriableError
from ..integrity import VerifiedReader
from .session import RegistrySession

log = logging.getLogger(__name__)
OCTET = "application/octet-stream"
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


class ChunksRefused(ProtocolError):
    """The registry does not take ``PATCH`` chunks (an error answer, or a ``416`` that took nothing): send the blob whole."""


class SessionLost(RetriableError):
    """The registry lost the upload session or its offset: the upload must start again (new session)."""


def session_offset(resp: requests.Response, what: str) -> int:
    """The bytes a session holds, from an answer's ``Range: 0-LAST`` (``0-0`` is also what an empty session says)."""
    value = (resp.headers.get("Range") or "").strip()
    m = _RANGE.match(value)
    if not m:
        raise ProtocolError(f"{what}: the registry's upload session answer has no usable Range ({value[:40]!r})")
    return int(m.group(1)) + 1


def _read_exactly(reader: VerifiedReader, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = reader.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class ChunkedUpload:
    """One chunked upload of ``size`` bytes to the session at ``location`` (see the module docstring)."""

    def __init__(self, session: RegistrySession, location: str, scope: str, what: str) -> None:
        self.session = session
        self.location = location
        self.scope = scope
        self.what = what
        self.patches = 0  # PATCH requests sent (for tests and logs)

    def _next(self, resp: requests.Response) -> None:
        location = resp.headers.get("Location")
        if location:
            self.location = self.session.url(location)

    def _offset(self) -> int:
        try:
            resp = self.session.request("GET", self.location, self.what, scope=self.scope, ok=(204, 200), allow_redirects=False)
            self._next(resp)
            return session_offset(resp, self.what)
        except (NotFoundError, ProtocolError) as exc:
            raise SessionLost(f"{self.what}: the registry cannot resume the upload ({exc})") from None

    def _send(self, data: bytes, start: int) -> None:
        """``PATCH`` ``data`` at ``start``; after a failure, resume from the offset the registry reports."""
        done = 0  # of data, held by the registry
        policy = self.session.policy
        started = time.monotonic()
        attempt = 0
        while done < len(data):
            attempt += 1
            part = data[done:]
            first = start + done
            headers = {"Content-Type": OCTET, "Content-Range": f"{first}-{first + len(part) - 1}", "Content-Length": str(len(part))}
            try:
                self.patches += 1
                resp = self.session.request(
                    "PATCH", self.location, self.what, scope=self.scope, ok=(202, 416), headers=headers, body=_constant(part), retry=False
                )
            except RetriableError as exc:
                err: LfsregError = exc
            except (ProtocolError, LimitExceededError) as exc:  # 400, 405, 413, 501...: no chunks here
                raise ChunksRefused(f"{self.what}: the registry refused a chunk ({exc})") from None
            else:
                if resp.status_code == 202:
                    self._next(resp)
                    if resp.headers.get("Range", "").strip() != f"0-{first + len(part) - 1}":
                        # Some registries' Range lags behind (ECR's): the final PUT's digest check is what counts.
                        log.debug("%s: Range %r after a chunk ending at %d", self.what, resp.headers.get("Range"), first + len(part) - 1)
                    return
                held = self._offset()  # 416: where the registry stands
                if held == first:  # it took nothing, and will not: e.g. GHCR's cap on a request's size
                    raise ChunksRefused(f"{self.what}: the registry refused the chunk at {first} (416)")
                err = RetriableError(f"{self.what}: the registry holds {held} bytes, not {first} (416)")
            wait = policy.next_wait(attempt, started, getattr(err, "retry_after", None))
            if wait is None:
                raise err
            log.info("%s: %s; resuming in %.1f s", self.what, err, wait)
            policy.sleep(wait)
            held = self._offset()
            if not start <= held <= start + len(data):
                raise SessionLost(f"{self.what}: the registry's session holds {held} bytes; cannot resume the chunk at {start}")
            done = held - start

    def run(self, reader: VerifiedReader, size: int, chunk: int, digest: str) -> requests.Response:
        """Send every chunk, verify the reader, ``PUT ?digest=``; the final answer (201) is returned."""
        try:
            offset = 0
            while offset < size:
                data = _read_exactly(reader, min(chunk, size - offset))
                if len(data) < min(chunk, size - offset):
                    reader.finish()  # raises: shorter than declared
                self._send(data, offset)
                offset += len(data)
            reader.finish()  # every byte verified before the blob is completed
            url = self.location + ("&" if "?" in self.location else "?") + f"digest={digest}"
            headers = {"Content-Type": OCTET, "Content-Length": "0"}
            return self.session.request("PUT", url, self.what, scope=self.scope, ok=(201, 204), headers=headers, body=lambda: b"")
        except BaseException:
            with contextlib.suppress(LfsregError):  # best effort: an abandoned session expires on the registry
                self.session.request("DELETE", self.location, self.what, scope=self.scope, ok=(200, 202, 204, 404), retry=False)
            raise
