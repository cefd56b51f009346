"""Streaming layer compression: ``zstd``, ``gzip`` or ``none``.

Layers can be gigabytes, so everything here works on streams in fixed-size chunks and never
holds a whole layer in memory.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any, BinaryIO, Protocol

import zstandard

from .errors import UsageError

ALGORITHMS = ("zstd", "gzip", "none")
DEFAULT = "zstd"
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": 0}
# zstd's default job (4x the window, up to 32 MiB at higher levels) makes each worker hold
# 30-40 MB; 4 MiB jobs cost 0.5 % of ratio on /usr content and cap a worker near 10 MB.
ZSTD_JOB_SIZE = 4 << 20
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


class _Compressor:
    """Writes compressed bytes of what it is given to ``out``; ``finish()`` flushes the end."""

    def __init__(self, algorithm: str, out: BinaryIO, level: int | None, threads: int) -> None:
        level = DEFAULT_LEVELS[algorithm] if level is None else level
        self._zstd = None
        self._gzip = None
        if algorithm == "zstd":
            # Each zstd worker buffers a few tens of MB: the caller bounds the count so that peak
            # memory stays flat whatever the core count. Output is the same for any count >= 1.
            params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=ZSTD_JOB_SIZE)
            self._zstd = zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False, write_return_read=True)
        elif algorithm == "gzip":
            self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=level, mtime=0)
        else:
            raise UsageError(f"cannot compress with {algorithm!r}")

    def write(self, data: bytes) -> int:
        target = self._zstd if self._zstd is not None else self._gzip
        assert target is not None
        target.write(data)
        return len(data)

    def finish(self) -> None:
        if self._zstd is not None:
            self._zstd.flush(zstandard.FLUSH_FRAME)
            self._zstd.close()  # type: ignore[no-untyped-call]  # zstandard's stub leaves close() unannotated
        if self._gzip is not None:
            self._gzip.close()


def compressor(algorithm: str, out: BinaryIO, level: int | None = None, threads: int = 1) -> _Compressor:
    """Return a writer that compresses into ``out``; call ``finish()`` after the last write.

    ``threads`` is the number of zstd worker threads (gzip is single-threaded).
    """
    return _Compressor(algorithm, out, level, threads)


def zstd_threads(parallel_layers: int) -> int:
    """Workers per compressor: the cores (at most 4) shared among layers compressed at once."""
    return max(1, min(os.cpu_count() or 1, 4) // max(1, parallel_layers))


def decompressing_reader(algorithm: str, src: BinaryIO) -> Reader:
    """Return a reader of the decompressed bytes of ``src`` (``src`` itself for ``none``)."""
    if algorithm == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True, closefd=False)
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
