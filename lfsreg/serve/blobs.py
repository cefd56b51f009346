"""Blobs by digest: configs and manifests from git, layers from LFS through the verified local cache.

``HEAD`` is answered from the registry alone: the size is the pointer's (or the git blob's),
nothing is asked of the LFS storage. ``GET`` sends the object's file: for a local registry
its LFS directory, for a remote one the local cache (filled first, each object verified
before it appears there). The first whole-blob ``GET`` of a file (per server process, per
size, mtime and inode of the file) is hashed as it is sent and cut short if the file does not
match its digest (a damaged cache entry is dropped); once a file matched, it is sent with
``sendfile`` (clients check the digest too). A ``Range`` is sent from the same files:
``Range: bytes=a-b`` (one range) gets 206, an unsatisfiable one 416.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..digest import Digest
from ..errors import BlobNotFound, LfsregError
from ..formats.lfs_pointer import LfsObject
from ..lfs.store import CachedLfsStore, LocalLfsStore
from ..registry.view import RegistryView
from .errors import ApiError
from .http import FileBody, Request, Response
from .redirect import Redirector
from .state import ServeContext

log = logging.getLogger(__name__)
OCTETS = "application/octet-stream"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class StoredBlob:
    """Where a blob is: ``data`` (a git blob, verified) or ``objects`` (LFS, in order); ``size`` in bytes."""

    digest: Digest
    size: int
    data: bytes | None = None
    objects: tuple[LfsObject, ...] = ()


def find_blob(view: RegistryView, digest: Digest) -> StoredBlob | None:
    """The stored blob ``digest``, or ``None``: a git blob's bytes (verified), or a layer's LFS objects (checked against the tree).

    Damaged pointers raise :class:`CorruptContentError` (the router answers 500 ``UNKNOWN``).
    """
    if view.has_blob(digest):
        data = view.blob(digest)  # manifests and configs are small
        return StoredBlob(digest, len(data), data=data)
    try:
        objects = view.blob_objects(digest)  # one pointer, or a chunked layer's (docs/format.md)
    except BlobNotFound:
        return None
    return StoredBlob(digest, sum(o.size for o in objects), objects=tuple(objects))


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive of a one-range ``Range`` header; ``None``: the whole blob; 416 if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: RFC 9110 lets a server ignore it
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ApiError(
            "BLOB_UNKNOWN", f"range {header} is not satisfiable (size {size})", 416, headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


class BlobReader:
    """Answers blob ``GET``/``HEAD`` (see the module docstring). Thread-safe."""

    def __init__(
        self, ctx: ServeContext, staged: Callable[[Digest], LfsObject | None] | None = None, redirect: Redirector | None = None
    ) -> None:
        self.ctx = ctx
        self.staged = staged  # the write side's uploads that no commit names yet
        self.redirect = redirect  # --redirect: send clients to presigned LFS URLs
        # Downloads into the cache, one at a time: the transfer queue and its connection (an SSH
        # channel, an HTTP session) are the store's one client. A cold cache only; warm reads never wait.
        self._fetching = threading.Lock()
        self._verified: set[tuple[str, int, int, int]] = set()  # files whose bytes matched their digest

    def get(self, req: Request, digest: Digest) -> Response:
        """The blob ``digest`` (404 ``BLOB_UNKNOWN`` if the registry does not hold it)."""
        with self.ctx.reading() as view:
            blob = None if view.empty else find_blob(view, digest)
        if blob is None and self.staged is not None:
            obj = self.staged(digest)
            blob = StoredBlob(digest, obj.size, objects=(obj,)) if obj is not None else None
        if blob is None:
            raise ApiError("BLOB_UNKNOWN", f"blob unknown to registry: {digest}")
        headers = {"Content-Type": OCTETS, "Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
        if req.head:
            return Response(200, {**headers, "Content-Length": str(blob.size)})
        span = parse_range(req.headers.get("Range"), blob.size)
        if blob.data is not None:
            if span is None:
                return Response(200, headers, blob.data)
            start, end = span
            return Response(206, {**headers, "Content-Range": f"bytes {start}-{end}/{blob.size}"}, blob.data[start : end + 1])
        if self.redirect is not None and len(blob.objects) == 1:
            href = self.redirect.location(blob.objects[0])
            if href is not None:
                return Response(307, {"Location": href, "Docker-Content-Digest": str(digest)})
        files = self._files(blob)
        if span is None:
            stamps = [_stamp(path) for path, _ in files]
            if all(stamp in self._verified for stamp in stamps):
                return Response(200, headers, FileBody(_segments(files, 0, blob.size - 1)))
            body = FileBody(_segments(files, 0, blob.size - 1), digest, lambda: self._drop(blob), lambda: self._verified.update(stamps))
            return Response(200, headers, body)
        start, end = span
        return Response(206, {**headers, "Content-Range": f"bytes {start}-{end}/{blob.size}"}, FileBody(_segments(files, start, end)))

    def _files(self, blob: StoredBlob) -> list[tuple[str, int]]:
        """``(path, size)`` of each object's local file, fetched into the cache first if needed."""
        lfs = self.ctx.lfs
        if isinstance(lfs, LocalLfsStore):
            paths = [lfs.path(o) for o in blob.objects]
            missing = [o for o, p in zip(blob.objects, paths, strict=True) if _size(p) != o.size]
            if missing:
                raise ApiError("UNKNOWN", f"{lfs.label}: LFS object sha256:{missing[0].oid} of {blob.digest} is missing", 500)
        elif isinstance(lfs, CachedLfsStore):
            paths = [lfs.cache.path(o) for o in blob.objects]
            with self._fetching:
                todo = [o for o, p in zip(blob.objects, paths, strict=True) if _size(p) != o.size]
                if todo:
                    try:
                        lfs.remote.download(todo, lfs.cache)  # verified before it appears in the cache
                    except LfsregError as exc:
                        log.warning("fetching %s: %s", blob.digest, exc)
                        raise
        else:  # another store: nothing to serve from
            raise ApiError("UNSUPPORTED", f"{lfs.label}: layers cannot be served from this store", 500)
        return [(p, o.size) for p, o in zip(paths, blob.objects, strict=True)]

    def _drop(self, blob: StoredBlob) -> None:
        """A whole-blob send found the files damaged: remove cached copies (a local registry's are left for verify)."""
        log.error("blob %s: its stored bytes do not match its digest", blob.digest)
        lfs = self.ctx.lfs
        if isinstance(lfs, CachedLfsStore):
            for obj in blob.objects:
                with contextlib.suppress(OSError):
                    os.unlink(lfs.cache.path(obj))


def _stamp(path: str) -> tuple[str, int, int, int]:
    """What identifies a file's version: path, size, mtime and inode (a replaced or rewritten file is new)."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, 0, 0)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def _segments(files: list[tuple[str, int]], start: int, end: int) -> list[tuple[str, int, int]]:
    """The parts of concatenated ``files`` covering bytes ``start``..``end`` (inclusive)."""
    out = []
    offset = 0
    for path, size in files:
        lo, hi = max(start, offset), min(end, offset + size - 1)
        if lo <= hi:
            out.append((path, lo - offset, hi - lo + 1))
        offset += size
    return out


__all__ = ["BlobReader", "StoredBlob", "find_blob", "parse_range"]
