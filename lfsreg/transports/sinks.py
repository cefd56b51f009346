"""Where transports write image files: a directory or a tar file, atomically, or a stream.

A :class:`Sink` receives files by relative path. Blobs arrive as verifying readers: the sink
copies exactly the declared size, then calls ``finish()``, which raises if the bytes were not
what the descriptor promised; the output is then discarded, never left half-written.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol

from ..compression import compress_threads
from ..digest import CHUNK, HashingReader
from ..errors import InvalidImageError, UsageError
from ..formats.oci_layout import blob_path
from ..image import Blob
from ..integrity import Verifying, atomic_output
from ..manifest import Descriptor
from ..pipeline import Ordered
from ..staging import writing


class Sink(Protocol):
    """Destination of a layout's files. ``commit()`` publishes; ``abort()`` discards."""

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the output already holds the blob ``desc`` intact (so it need not be written)."""
        ...

    def put(self, path: str, size: int, reader: Verifying) -> None:
        """Copy exactly ``size`` bytes from ``reader``, then ``reader.finish()`` (which verifies)."""
        ...

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small file."""
        ...

    def commit(self) -> None:
        """Publish everything written, atomically."""
        ...

    def abort(self) -> None:
        """Discard everything written."""
        ...


def _member(path: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def make_parents(path: str) -> list[str]:
    """Create the missing parent directories of ``path``; return them, deepest first."""
    created: list[str] = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(created):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
    return created


def remove_parents(created: list[str]) -> None:
    """Undo :func:`make_parents` where the directories are still empty."""
    for directory in created:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


class TarStreamSink:
    """Writes a tar archive to a stream (a pipe to ``docker load``): nothing to rename or undo.

    On failure the stream simply ends early, which makes the receiver reject the archive.
    """

    def __init__(self, stream: BinaryIO, *, mode: str = "w|", copy_size: int | None = None) -> None:
        # copy_size: the reads by which members are copied (tarfile's default, 16 KiB, for a
        # stream: its buffer re-slices itself per 10 KiB record, so large writes cost more there)
        self._tar = tarfile.open(fileobj=stream, mode=mode, format=tarfile.PAX_FORMAT, copybufsize=copy_size)  # type: ignore[call-overload]
        self._written: set[str] = set()

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the blob was already written (and verified) into this archive."""
        return blob_path(desc) in self._written

    def put(self, path: str, size: int, reader: Verifying) -> None:
        """Add a member of ``size`` bytes from ``reader`` and verify it."""
        try:
            self._tar.addfile(_member(path, size), reader)
        except OSError as exc:
            if "unexpected end of data" in str(exc):
                raise InvalidImageError(f"{reader.what}: shorter than the declared {size} bytes") from exc
            raise
        reader.finish()
        self._written.add(path)

    def put_bytes(self, path: str, data: bytes) -> None:
        """Add a small member."""
        self._tar.addfile(_member(path, len(data)), io.BytesIO(data))
        self._written.add(path)

    def commit(self) -> None:
        """Write the end-of-archive marker."""
        self._tar.close()

    def abort(self) -> None:
        """Leave the stream truncated (the caller closes it): no end marker, no buffered tail."""
        self._tar.closed = True
        with contextlib.suppress(AttributeError):
            self._tar.fileobj.closed = True  # a stream-mode tarfile would flush its buffer when collected


#: Blobs at least this large go into a tar file on lanes of their own (:class:`TarSink`).
LANE_MIN = 4 << 20
#: Layers copied at once (one per core, at most this many: each lane holds a layer's pipeline, ~30 MB for zstd).
MAX_LANES = 2


def _copy_at(fd: int, at: int, size: int, reader: Verifying, stop: threading.Event) -> None:
    """Copy exactly ``size`` bytes of ``reader`` into ``fd`` at offset ``at`` (and the tar padding), then verify."""
    done = 0
    while done < size:
        if stop.is_set():
            return  # the archive is being discarded
        data = reader.read(min(CHUNK, size - done))
        if not data:
            raise InvalidImageError(f"{reader.what}: shorter than the declared {size} bytes")
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, at + done)
            view, done = view[n:], done + n
    if size % tarfile.BLOCKSIZE:
        os.pwrite(fd, bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE), at + size)
    reader.finish()


class TarSink(TarStreamSink):
    """Writes a tar archive to a temporary file and renames it over ``path`` on commit.

    Blobs of at least :data:`LANE_MIN` bytes (layers) are copied on ``lanes`` threads (default:
    one per core, at most :data:`MAX_LANES`), several at once, each into the place its header
    reserved in the file (the archive is byte for byte the one written in order). A layer's
    reading and hashing (and gzip decoding) is one chain of work on one core: sha256 does not
    split, so two layers at once use two cores (docs/format.md, *Reading*). A reader whose work
    already spreads over the cores (``spread``: a zstd layer's decode pool) is copied in order:
    two of those at once cost more CPU and memory and were slower (measured). A lane's failure
    is raised by the next ``put`` or by ``commit``; ``abort`` stops the lanes at their next chunk
    and waits for them before the file goes.
    """

    def __init__(self, path: str, lanes: int | None = None) -> None:
        self.path = path
        lanes = min(MAX_LANES, compress_threads()) if lanes is None else lanes
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory; give the archive a file name")
        self._created = make_parents(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, self._tmp = tempfile.mkstemp(prefix=".lfsreg-", suffix=".tar.tmp", dir=directory)
        self._file = os.fdopen(fd, "wb")
        super().__init__(self._file, mode="w", copy_size=CHUNK)  # layers come in CHUNKs (ReadAhead): no re-slicing
        self._lanes: Ordered[None] | None = Ordered(lanes, lanes, "lfsreg-lane") if lanes > 1 else None
        self._stop = threading.Event()

    def put(self, path: str, size: int, reader: Verifying) -> None:
        """Add a member of ``size`` bytes from ``reader``: its header now, its bytes on a lane if it is large."""
        if self._lanes is None or size < LANE_MIN or getattr(reader, "spread", False):
            super().put(path, size, reader)
            return
        info = _member(path, size)
        header = info.tobuf(self._tar.format, self._tar.encoding, self._tar.errors)  # as tarfile.addfile does
        self._file.write(header)
        at = self._tar.offset + len(header)
        self._tar.offset = at + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self._tar.members.append(info)
        self._file.seek(self._tar.offset)  # what follows goes after the reserved place
        self._written.add(path)
        for _ in self._lanes.submit(_copy_at, self._file.fileno(), at, size, reader, self._stop):
            pass  # raises a finished lane's failure; waits while every lane is busy

    def commit(self) -> None:
        """Wait for the lanes, finish the archive and rename it into place."""
        if self._lanes is not None:
            for _ in self._lanes.drain():
                pass
            self._lanes.close()
        super().commit()
        self._file.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard the partial archive (the lanes stopped first: none writes to it after this)."""
        self._stop.set()
        if self._lanes is not None:
            self._lanes.close(wait=True)
        super().abort()
        with contextlib.suppress(OSError):  # the buffered tail that a full disk refused
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
        remove_parents(self._created)


class DirSink:
    """Writes into a directory: each file atomically; a new directory appears only on commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fresh = not os.path.exists(path)
        self._created: list[str] = []
        if self._fresh:
            parent = os.path.dirname(os.path.abspath(path))
            self._created = make_parents(path)
            self._root = tempfile.mkdtemp(prefix=".lfsreg-", dir=parent)
        else:
            if not os.path.isdir(path):
                raise InvalidImageError(f"{path}: exists and is not a directory")
            self._root = path

    def _full(self, path: str) -> str:
        return os.path.join(self._root, path)

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the blob's file exists as a regular file with the right size and digest.

        An existing layout may hold a damaged or truncated blob (an earlier crash, a disk
        error, a hand edit): it is hashed, and rewritten unless it is intact.
        """
        path = self._full(blob_path(desc))
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != desc.size:
            return False
        with open(path, "rb") as f:
            reader = HashingReader(f)
            reader.drain()
        return reader.digest == desc.digest

    def put(self, path: str, size: int, reader: Verifying) -> None:
        """Write a file of ``size`` bytes from ``reader`` and verify it before it appears."""
        with atomic_output(self._full(path)) as f:
            shutil.copyfileobj(reader, f, 1 << 20)
            reader.finish()

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small file atomically."""
        with atomic_output(self._full(path)) as f:
            f.write(data)

    def commit(self) -> None:
        """Publish a new directory by renaming it into place."""
        if self._fresh:
            os.chmod(self._root, 0o755)
            os.rename(self._root, self.path)

    def abort(self) -> None:
        """Remove a new directory; an existing layout keeps only complete, verified blobs."""
        if self._fresh:
            shutil.rmtree(self._root, ignore_errors=True)
            remove_parents(self._created)


def put_blob(sink: Sink, blob: Blob) -> None:
    """Write ``blob`` under ``blobs/`` unless the output already holds it intact."""
    if not sink.has_blob(blob.desc):
        sink.put(blob_path(blob.desc), blob.desc.size, blob.opener())


def write_all(sink: Sink, write: Callable[[Sink], None]) -> None:
    """Run ``write`` on ``sink``, then commit; abort on any failure (all or nothing)."""
    try:
        with writing(getattr(sink, "path", "the output")):  # a full disk: one line naming the output
            write(sink)
            sink.commit()
    except BaseException:
        sink.abort()
        raise
