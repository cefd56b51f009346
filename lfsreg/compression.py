"""Streaming layer compression: ``zstd``, ``gzip`` or ``none``.

Layers can be gigabytes, so everything here works on streams in fixed-size chunks and never
holds a whole layer in memory.
"""

from __future__ import annotations

import gzip
import os
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol

import zstandard

from .errors import UsageError
from .zstd_frames import FrameReader, settle_allocator

ALGORITHMS = ("zstd", "gzip", "none")
DEFAULT = "zstd"
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": 0}
#: zstd layers are written as independent frames of this much input each (docs/format.md,
#: *Compression*): 0.4 % larger than one frame on /usr content, no more CPU than zstd's own
#: multi-threaded stream, and a pull decodes them on every core (lfsreg.zstd_frames).
ZSTD_FRAME = 4 << 20
#: At most this many threads compress one layer (each holds about two frames, ~10 MB).
MAX_THREADS = 4
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


class Reader(Protocol):
    """The part of a binary stream the pipelines need."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


class Writer(Protocol):
    """The part of a writable binary stream the pipelines need."""

    def write(self, data: bytes, /) -> int:
        """Write all of ``data``."""
        ...


def check_algorithm(name: str) -> str:
    """Return ``name`` if lfsreg knows it, else raise :class:`UsageError`."""
    if name not in ALGORITHMS:
        raise UsageError(f"unknown compression {name!r}: choose one of {', '.join(ALGORITHMS)}")
    return name


def sniff(head: bytes) -> str:
    """Guess a stream's compression from its first bytes (``none`` if not gzip or zstd)."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


class _Gzip:
    """Writes gzip of what it is given to ``out``; ``finish()`` writes the end (single-threaded)."""

    def __init__(self, out: Writer, level: int) -> None:
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=level, mtime=0)  # type: ignore[call-overload]

    def write(self, data: bytes) -> int:
        self._gzip.write(data)
        return len(data)

    def end_input(self) -> None:
        """Nothing runs in the background: :meth:`finish` does the rest."""

    def finish(self) -> None:
        self._gzip.close()

    def abort(self) -> None:
        """Nothing runs in the background."""


_local = threading.local()


def _compress_frame(data: bytes, level: int) -> bytes:
    """One zstd frame of ``data`` (content size in its header), by this thread's own context."""
    contexts: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = {}
    cctx = contexts.get(level)
    if cctx is None:
        cctx = contexts[level] = zstandard.ZstdCompressor(level=level)
    return cctx.compress(data)


class _FramedZstd:
    """zstd as independent frames of :data:`ZSTD_FRAME` input bytes, compressed by a thread pool.

    Frames are cut every :data:`ZSTD_FRAME` bytes of input whatever the sizes of the writes,
    and written to ``out`` in order, so the output depends only on the input and the level,
    never on the number of threads. At most ``threads + 1`` frames are in flight: the writer
    waits for the oldest one when the pool is that far ahead. The caller's thread (reading,
    hashing, writing the output) runs beside the pool's, which is what spreads a layer over
    the cores. A failure in the pool is raised by the next ``write`` or ``finish``.
    """

    def __init__(self, out: Writer, level: int, threads: int) -> None:
        settle_allocator()  # frames are allocated on one thread and freed on others
        self._out = out
        self._level = level
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="lfsreg-zstd")
        self._window = max(1, threads) + 1
        self._pending: deque[Future[bytes]] = deque()
        self._buf = bytearray()
        self._frames = 0

    def _submit(self, data: bytes) -> None:
        self._pending.append(self._pool.submit(_compress_frame, data, self._level))
        self._frames += 1
        self._drain(self._window)

    def _drain(self, keep: int) -> None:
        """Write finished frames in order; wait for the oldest while more than ``keep`` are in flight."""
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            self._out.write(self._pending.popleft().result())

    def write(self, data: bytes) -> int:
        if not self._buf and len(data) == ZSTD_FRAME:
            self._submit(bytes(data))  # a reader of ZSTD_FRAME chunks: no copy (bytes of bytes is itself)
            return len(data)
        self._buf += data
        while len(self._buf) >= ZSTD_FRAME:
            self._submit(bytes(self._buf[:ZSTD_FRAME]))
            del self._buf[:ZSTD_FRAME]
        return len(data)

    def end_input(self) -> None:
        """No more writes: the rest goes to the pool (an empty input still makes one, empty, frame)."""
        if self._buf or not self._frames:
            self._submit(bytes(self._buf))
            self._buf = bytearray()

    def finish(self) -> None:
        """:meth:`end_input`, then write every frame."""
        self.end_input()
        try:
            self._drain(0)
        finally:
            self._pool.shutdown(wait=False)

    def abort(self) -> None:
        """Drop the frames not written: queued ones are cancelled, running ones end unread."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


Compressor = _Gzip | _FramedZstd


def compressor(algorithm: str, out: Writer, level: int | None = None, threads: int = 0) -> Compressor:
    """Return a writer that compresses into ``out``: ``finish()`` after the last write, ``abort()`` on failure.

    zstd is written as independent frames (:class:`_FramedZstd`) by ``threads`` workers
    (0: :func:`compress_threads`); gzip is single-threaded.
    """
    if algorithm not in ("zstd", "gzip"):
        raise UsageError(f"cannot compress with {algorithm!r}")
    level = DEFAULT_LEVELS[algorithm] if level is None else level
    if algorithm == "zstd":
        return _FramedZstd(out, level, threads or compress_threads())
    return _Gzip(out, level)


def compress_threads() -> int:
    """Workers compressing one layer's frames: the cores this process may use, at most :data:`MAX_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def decode_threads() -> int:
    """Workers decoding one layer's frames on a pull: one core fewer than :func:`compress_threads`, at least one.

    A pull already keeps a core busy beside the decoders (reading and hashing the stored blob,
    hashing the plain bytes in order, writing). Measured on 2 cores (1.33 GB image, 5 layers,
    3 runs each, load ~2): 1 decoder 1.76-1.87 s, 2 decoders 2.03-2.13 s (more CPU in
    hand-offs and page faults, nothing gained).
    """
    return max(1, compress_threads() - 1)


def decompressing_reader(algorithm: str, src: BinaryIO) -> Reader:
    """Return a reader of the decompressed bytes of ``src`` (``src`` itself for ``none``).

    zstd frames are decoded on :func:`decode_threads` workers (:class:`lfsreg.zstd_frames.FrameReader`).
    """
    if algorithm == "zstd":
        return FrameReader(src, decode_threads())
    if algorithm == "gzip":
        return gzip.GzipFile(mode="rb", fileobj=src)
    return src


class FeedDecompressor:
    """Push-style decompression: ``feed()`` compressed chunks, get decompressed ones back.

    Handles multi-member gzip and multi-frame zstd streams, as ``docker load`` does.
    """

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._obj = self._new()

    def _new(self) -> Any:
        if self.algorithm == "zstd":
            return zstandard.ZstdDecompressor().decompressobj()
        if self.algorithm == "gzip":
            return zlib.decompressobj(wbits=31)
        return None

    def feed(self, data: bytes) -> bytes:
        """Decompress the next chunk (``none`` passes it through)."""
        if self._obj is None:
            return data
        out = []
        while data:
            out.append(self._obj.decompress(data))
            data = b""
            if self._obj.eof and self._obj.unused_data:
                data = self._obj.unused_data
                self._obj = self._new()
        return b"".join(out)

    def complete(self) -> bool:
        """True if the stream ended at a member/frame boundary."""
        return self._obj is None or bool(self._obj.eof)
