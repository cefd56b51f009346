"""The distribution-API operations lfsreg needs: manifests, blobs, uploads (OCI distribution-spec v1.1).

Reads: a manifest by tag or digest is fetched with an ``Accept`` for OCI and Docker schema 2
manifests and indexes; its exact bytes are checked against the digest asked for (or, by tag,
against the ``Docker-Content-Digest`` the registry sent). A blob is streamed raw; the caller
verifies it while reading (:class:`lfsreg.integrity.VerifiedReader`), as for every source.

Writes: a blob is skipped when ``HEAD`` finds it, mounted from another repository of the same
registry when the caller knows one that holds it, else uploaded. A blob up to
:attr:`RegistryClient.chunk_size` (default :data:`CHUNK_SIZE`) goes in one ``PUT ?digest=`` whose
body is streamed from a verifying reader: a body that fails verification aborts the request
before its last byte, so the registry never completes it. A larger one goes in ``PATCH``
chunks with ``Content-Range`` (:mod:`lfsreg.distribution.upload`): one chunk in memory at a
time, a cut chunk resumed from the registry's offset instead of the whole blob sent again, and
no request larger than a chunk (proxies in front of registries cap request bodies); a registry
that refuses chunks gets the blob in one streamed ``PUT`` after all. A
manifest is ``PUT`` last, by digest or by tag. Each request is retried by
:class:`lfsreg.distribution.session.RegistrySession`'s one loop.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

import requests

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import CorruptContentError, ImageNotFound, LfsregError, NotFoundError, ProtocolError, RepositoryNotFound
from ..integrity import VerifiedReader
from ..lfs.deadline import read_bounded
from .session import RegistryAccess, RegistrySession
from .upload import ChunkedUpload, ChunksRefused, SessionLost

log = logging.getLogger(__name__)
#: Manifests larger than this are refused (the spec asks registries to accept at least 4 MiB).
MAX_MANIFEST = 4 << 20
ACCEPT = ", ".join((mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_LIST, mt.DOCKER_MANIFEST))
OCTET = "application/octet-stream"
#: Blobs up to this size are sent in one streamed ``PUT``; larger ones in ``PATCH`` chunks of this size.
CHUNK_SIZE = 32 << 20
#: A registry asking (``OCI-Chunk-Min-Length``) for chunks larger than this gets one streamed ``PUT``.
MAX_CHUNK = 256 << 20


def pull_scope(name: str) -> str:
    return f"repository:{name}:pull"


def push_scope(name: str) -> str:
    return f"repository:{name}:pull,push"


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as the registry stores it: exact bytes, media type, digest (verified)."""

    data: bytes
    media_type: str
    digest: Digest


class _VerifyingBody:
    """A request body read from a :class:`VerifiedReader`: at its end the reader is finished (verified).

    A mismatch raises inside requests' send loop, so the request is cut before it completes.
    Deliberately no ``tell``/``seek``/``__iter__``: requests then takes the length from ``len``
    and sends the body by ``read`` calls.
    """

    def __init__(self, reader: VerifiedReader, size: int) -> None:
        self._reader = reader
        self._left = size
        self.len = size  # requests takes the Content-Length from here

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._reader.read(min(self._left, n if n and n > 0 else 1 << 20))
        self._left -= len(data)
        if not data:
            self._reader.finish()  # raises: shorter than declared
        elif self._left == 0:
            self._reader.finish()
        return data


class RegistryClient:
    """The operations of :mod:`lfsreg.distribution` on one registry host (``HOST[:PORT]``)."""

    def __init__(self, host: str, access: RegistryAccess, *, session: RegistrySession | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        self.host = host
        self.session = session or RegistrySession(host, access)
        self.chunk_size = chunk_size

    def close(self) -> None:
        """Close the host's connections."""
        self.session.close()

    def ping(self) -> None:
        """``GET /v2/``: the host speaks the API and takes our credentials (or needs none)."""
        self.session.request("GET", "/v2/", f"{self.host}: /v2/", scope="", ok=(200,))

    # -- reading ------------------------------------------------------------------------------
    def get_manifest(self, name: str, reference: str) -> FetchedManifest:
        """The manifest or index ``name:reference`` (a tag or a digest), its bytes verified."""
        what = f"docker://{self.host}/{name}{'@' if ':' in reference else ':'}{reference}"
        resp = self.session.request(
            "GET", f"/v2/{name}/manifests/{reference}", what, scope=pull_scope(name), ok=(200, 404), headers={"Accept": ACCEPT}, stream=True
        )
        try:
            if resp.status_code == 404:
                raise ImageNotFound(f"{what}: no such manifest in {self.host}")
            data = read_bounded(resp, MAX_MANIFEST, what)
        finally:
            resp.close()
        digest = Digest.of_bytes(data)
        if ":" in reference:
            expected = Digest.parse(reference)
            if digest != expected:
                raise CorruptContentError(f"{what}: the registry sent a manifest whose digest is {digest}")
        else:
            sent = resp.headers.get("Docker-Content-Digest", "")
            if sent.startswith("sha256:") and sent != str(digest):
                raise CorruptContentError(f"{what}: the manifest's bytes hash to {digest}, the registry says {sent[:80]}")
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            media_type = _sniff(data, what)
        return FetchedManifest(data, media_type, digest)

    def open_blob(self, name: str, digest: Digest) -> BinaryIO:
        """A stream of the blob's raw bytes (unverified: read it through a :class:`VerifiedReader`)."""
        what = f"docker://{self.host}/{name}@{digest}"
        resp = self.session.request("GET", f"/v2/{name}/blobs/{digest}", what, scope=pull_scope(name), ok=(200, 404), stream=True)
        if resp.status_code == 404:
            resp.close()
            raise NotFoundError(f"{what}: no such blob in {self.host}")
        return cast(BinaryIO, _ResponseStream(resp))

    # -- writing ------------------------------------------------------------------------------
    def has_blob(self, name: str, digest: Digest, size: int | None = None) -> bool:
        """``HEAD`` the blob; a size that differs from ``size`` counts as absent."""
        what = f"docker://{self.host}/{name}@{digest}"
        resp = self.session.request("HEAD", f"/v2/{name}/blobs/{digest}", what, scope=push_scope(name), ok=(200, 404))
        if resp.status_code == 404:
            return False
        length = resp.headers.get("Content-Length", "")
        return size is None or not length.isdigit() or int(length) == size

    def mount(self, name: str, digest: Digest, source_name: str) -> bool:
        """Cross-repository mount of ``digest`` from ``source_name``; ``False`` when the registry declined."""
        what = f"docker://{self.host}/{name}@{digest}"
        scope = f"{push_scope(name)} {pull_scope(source_name)}"
        resp = self.session.request(
            "POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={source_name}", what, scope=scope, ok=(201, 202), allow_redirects=False
        )
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:  # declined: a session was opened instead; close it (best effort)
            with contextlib.suppress(LfsregError):  # best effort: an abandoned session expires on the registry
                self.session.request("DELETE", location, what, scope=push_scope(name), ok=(200, 202, 204, 404))
        return False

    def upload(self, name: str, digest: Digest, size: int, opener: Callable[[], VerifiedReader]) -> None:
        """Upload a blob: ``POST`` a session, then one ``PUT ?digest=`` or ``PATCH`` chunks (module docstring).

        ``opener()`` returns a fresh :class:`VerifiedReader` for each attempt of a one-``PUT`` upload.
        """
        what = f"docker://{self.host}/{name}@{digest}"
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                done = self._upload_once(name, digest, size, opener, what)
                break
            except SessionLost as exc:
                wait = self.session.policy.next_wait(attempt, started, exc.retry_after)
                if wait is None:
                    raise
                log.info("%s; starting the upload again in %.1f s", exc, wait)
                self.session.policy.sleep(wait)
        sent = done.headers.get("Docker-Content-Digest", "")
        if sent and sent != str(digest):
            raise ProtocolError(f"{what}: {self.host} stored the blob as {sent[:80]}")

    def _start_upload(self, name: str, what: str) -> tuple[str, int]:
        """``POST`` a new upload session: its URL, and the smallest chunk the registry takes (0: any)."""
        resp = self.session.request("POST", f"/v2/{name}/blobs/uploads/", what, scope=push_scope(name), ok=(202,), allow_redirects=False)
        location = resp.headers.get("Location")
        if not location:
            raise ProtocolError(f"{what}: {self.host} opened an upload without a Location")
        minimum = resp.headers.get("OCI-Chunk-Min-Length", "")
        return self.session.url(location), int(minimum) if minimum.isdigit() else 0

    def _upload_once(self, name: str, digest: Digest, size: int, opener: Callable[[], VerifiedReader], what: str) -> requests.Response:
        scope = push_scope(name)
        url, minimum = self._start_upload(name, what)
        chunk = max(self.chunk_size, minimum)
        if size > chunk and chunk <= MAX_CHUNK:
            try:
                return ChunkedUpload(self.session, url, scope, what).run(opener(), size, chunk, str(digest))
            except ChunksRefused as exc:  # its session was deleted: a new one for the blob whole
                log.info("%s; sending the blob in one request", exc)
                url, _ = self._start_upload(name, what)
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        headers = {"Content-Type": OCTET, "Content-Length": str(size)}
        body = lambda: _VerifyingBody(opener(), size)  # noqa: E731 -- a fresh reader per attempt
        return self.session.request("PUT", url, what, scope=scope, ok=(201, 204), headers=headers, body=body)

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> None:
        """``PUT`` a manifest or index by tag or digest (exact bytes)."""
        digest = Digest.of_bytes(data)
        what = f"docker://{self.host}/{name}{'@' if ':' in reference else ':'}{reference}"
        resp = self.session.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            what,
            scope=push_scope(name),
            ok=(200, 201, 204),
            headers={"Content-Type": media_type},
            body=lambda: data,
        )
        sent = resp.headers.get("Docker-Content-Digest", "")
        if sent.startswith("sha256:") and sent != str(digest):
            raise ProtocolError(f"{what}: {self.host} stored the manifest as {sent[:80]}, not {digest}")


def _sniff(data: bytes, what: str) -> str:
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        raise ProtocolError(f"{what}: the registry sent a manifest that is not JSON") from None
    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(media_type, str) and (mt.is_index(media_type) or mt.is_manifest(media_type)):
        return media_type
    if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
        return mt.OCI_INDEX
    if isinstance(doc, dict) and doc.get("schemaVersion") == 2 and "layers" in doc:
        return mt.OCI_MANIFEST
    raise ProtocolError(f"{what}: unsupported manifest (Docker schema 1 or an unknown media type)")


class _ResponseStream(io.RawIOBase):
    """A streamed response body as a file; closes the response when closed."""

    def __init__(self, resp: requests.Response) -> None:
        self._resp = resp

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._resp.raw.read(None if n is None or n < 0 else n, decode_content=False)

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


__all__ = ["FetchedManifest", "RegistryAccess", "RegistryClient", "RepositoryNotFound"]
