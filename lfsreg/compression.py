"""Streaming layer compression: ``zstd``, ``gzip`` or ``none``.

Layers can be gigabytes, so everything here works on streams in fixed-size chunks and never
holds a whole layer in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import zlib
from typing import BinaryIO, Protocol

import zstandard

from .digest import HashingReader
from .errors import CorruptContentError, UsageError
from .pipeline import Fed, Ordered
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
        self._frames_out: Ordered[bytes] = Ordered(threads, max(1, threads) + 1, "lfsreg-zstd")
        self._buf = bytearray()
        self._frames = 0

    def _submit(self, data: bytes) -> None:
        self._frames += 1
        for frame in self._frames_out.submit(_compress_frame, data, self._level):
            self._out.write(frame)

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
            for frame in self._frames_out.drain():
                self._out.write(frame)
        finally:
            self._frames_out.close()

    def abort(self) -> None:
        """Drop the frames not written: queued ones are cancelled, running ones end unread."""
        self._frames_out.close()


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


def _hash_decoded(algorithm: str, src: Reader) -> tuple[str, int]:
    """The sha256 (hex) and size of the decompressed bytes of ``src``, read in bounded pieces."""
    reader = decompressing_reader(algorithm, src)  # type: ignore[arg-type]  # read() is all they use
    plain = HashingReader(reader)  # type: ignore[arg-type]  # read() is all it uses
    try:
        plain.drain()
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()  # a FrameReader stops its pool
    return plain.digest.hex, plain.count


#: What a decoder raises on corrupt or truncated input (gzip: EOFError; BadGzipFile is an OSError).
DECODE_ERRORS = (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError)


class FeedDecompressor:
    """Push-style decompression: ``feed()`` compressed chunks, ``finish()`` gives the plain bytes' sha256 and size.

    For compressed bytes passed on unchanged (stored as they came, copied to an OCI layout)
    whose plain content must still be checked. They are decoded on a thread of their own
    (``lfsreg-decompress``; zstd frames on a pool too, as a pull does: :class:`FrameReader`)
    while the caller goes on reading and writing, at most a few chunks behind, and always in
    bounded pieces: a small input that expands to gigabytes (a decompression bomb) is hashed a
    piece at a time, never held at once. Multi-member gzip and multi-frame zstd are read, as
    ``docker load`` does. A corrupt or truncated stream raises :class:`CorruptContentError`
    naming ``what``, from ``feed`` or ``finish``. ``none`` is hashed as fed.
    """

    def __init__(self, algorithm: str, what: str) -> None:
        self.algorithm = algorithm
        self.what = what
        self._fed: Fed[tuple[str, int]] | None = None
        self._plain = hashlib.sha256()
        self._size = 0
        if algorithm != "none":
            self._fed = Fed(lambda src: _hash_decoded(algorithm, src), name="lfsreg-decompress")

    def _corrupt(self, exc: BaseException) -> CorruptContentError:
        return CorruptContentError(f"{self.what}: corrupt {self.algorithm} data ({exc})")

    def feed(self, data: bytes) -> None:
        """Take the next compressed chunk; raise if what came before was corrupt."""
        if self._fed is None:
            self._plain.update(data)
            self._size += len(data)
            return
        try:
            self._fed.feed(data)
        except DECODE_ERRORS as exc:
            raise self._corrupt(exc) from exc

    def finish(self) -> tuple[str, int]:
        """The end of the stream: the sha256 (hex) and size of its plain bytes."""
        if self._fed is None:
            return self._plain.hexdigest(), self._size
        try:
            return self._fed.close()
        except DECODE_ERRORS as exc:
            raise self._corrupt(exc) from exc

    def abandon(self) -> None:
        """Stop decoding (also done when this object is collected)."""
        if self._fed is not None:
            self._fed.abandon()
