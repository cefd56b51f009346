"""Decompressing a zstd stream frame by frame, independent frames on a thread pool.

This is the pull's side of docs/format.md *Compression*: lfsreg writes a zstd layer as
independent frames of :data:`lfsreg.compression.ZSTD_FRAME` input bytes, each with its
decompressed size in its header. A frame decodes without the ones before it, so
:class:`FrameReader` hands whole frames to a pool (zstandard releases the GIL while it decodes)
and gives their outputs back in order; the thread that reads (and hashes) the compressed stream
only walks the frames' headers.

Frames are found by walking the format (RFC 8878): the frame header, then each block's 3-byte
header (type and size) up to the last block, then the checksum if the header announced one.
Nothing of it is trusted:

* a frame goes to the pool only if its header declares a content size of at most
  :data:`MAX_POOLED` (what its decoding allocates) and it is at most :data:`MAX_POOLED_IN`
  compressed bytes; it is decoded with ``allow_extra_data=False``, so the walk and the decoder
  must agree on where it ends, and libzstd checks the declared size (and the checksum);
* any other frame (no declared size, as streamed by ``zstd`` from a pipe, or larger: a layer
  another tool stored as one frame) is decoded in order on the reading thread by a streaming
  decoder fed a few blocks at a time, so memory stays bounded whatever a header claims
  (a block decodes to at most 128 KiB);
* skippable frames are skipped, as ``zstd -d`` does; anything else where a frame should start
  (trailing garbage), and a stream that ends inside a frame, raise :class:`zstandard.ZstdError`
  (which :class:`lfsreg.integrity.VerifiedReader` reports as corrupt data).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Protocol

import zstandard

from .pipeline import Ordered

#: Frames declaring at most this many decompressed bytes are decoded on the pool (2x lfsreg's own).
MAX_POOLED = 8 << 20
#: ... if they are at most this long compressed (a frame of stored blocks is a little longer than its content).
MAX_POOLED_IN = MAX_POOLED + (1 << 20)
#: Blocks fed at once to the streaming decoder of a frame not pooled: at most 4 MiB in or out per feed.
_SEQ_BLOCKS = 32
_MAX_BLOCK = 128 << 10  # a block's size (or an RLE block's output) is at most this (RFC 8878, Block_Maximum_Size)
_READ = 1 << 20
#: The size of the decoded pieces handed on (a pull's reads of plain layers are this size: lfsreg.digest.CHUNK).
PIECE = 1 << 20
_MAGIC = zstandard.FRAME_HEADER
_SKIPPABLE = 0x184D2A50  # the 16 magic numbers 0x184D2A50..0x184D2A5F
_UNKNOWN = zstandard.CONTENTSIZE_UNKNOWN

_local = threading.local()
_settled = threading.Event()


def settle_allocator() -> None:
    """Free one 8 MiB buffer, once per process, before the first pool starts.

    glibc's malloc maps requests above its mmap threshold (128 KiB at first) afresh and trims a
    heap whose free top exceeds twice that; freeing a mapped buffer raises both to its size. A
    pipeline's buffers (1 MiB pieces, 4 MiB frames) are allocated on pool threads and freed on
    others, and with the first thresholds the pools' heaps shrink and grow again for nearly
    every frame, faulting their pages back in: 130,000 page faults and ~0.2 s of system time
    for a 1.3 GB pull (measured). After one free of 8 MiB the heaps keep what the pipeline
    reuses. ``bytes(n)`` of a size this large is a fresh, untouched mapping, so this costs two
    system calls; elsewhere than glibc it is only an allocation and a free.
    """
    if not _settled.is_set():
        _settled.set()
        buffer = bytes(8 << 20)
        del buffer


class Reader(Protocol):
    """A compressed stream (:class:`lfsreg.compression.Reader`, which imports this module)."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


class _Parts:
    """A frame's bytes as the pieces of the chunks it spans, read one piece at a time (no join)."""

    def __init__(self, parts: list[bytes | memoryview]) -> None:
        self._parts = parts
        self._next = 0

    def read(self, n: int = -1, /) -> bytes | memoryview:
        if self._next == len(self._parts):
            return b""
        self._next += 1
        return self._parts[self._next - 1]


def _decode(frame: list[bytes | memoryview], size: int) -> list[bytes]:
    """One whole frame that its header says decodes to ``size`` bytes, as pieces of :data:`PIECE` bytes.

    Pieces rather than one buffer: a consumer reading a file's chunks takes them without
    copying. libzstd checks the blocks (and the checksum, if any); a frame that ends early
    (fewer bytes than its header says) is caught here.
    """
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    reader = dctx.stream_reader(_Parts(frame), read_size=_READ, read_across_frames=False)  # type: ignore[arg-type]  # any reader
    pieces = []
    got = 0
    while piece := reader.read(PIECE):
        pieces.append(piece)
        got += len(piece)
        if got > size:
            break
    if got != size:
        raise zstandard.ZstdError(f"a zstd frame decoded to {'more than ' if got > size else ''}{got} bytes, its header says {size}")
    return pieces


def _skippable(start: bytes) -> bool:
    """Whether the frame starting with these bytes (4 at least) is a skippable one."""
    return int.from_bytes(start[:4], "little") & 0xFFFFFFF0 == _SKIPPABLE


def _next_block(head: int, p: int) -> tuple[int, bool]:
    """Where the block after the one whose 3-byte header ``head`` is at ``p`` starts, and whether that was the last."""
    kind, size = (head >> 1) & 3, head >> 3
    if kind == 3 or size > _MAX_BLOCK:
        raise zstandard.ZstdError(f"corrupt zstd block ({'reserved type' if kind == 3 else f'{size} bytes'})")
    return p + 3 + (1 if kind == 1 else size), bool(head & 1)


class _Input:
    """The compressed stream's unused bytes, as the chunks read, and the walk over its frames.

    Positions are relative to the first unused byte. Bytes are looked at and taken without
    copying them: a frame is taken as views of the chunks it spans.
    """

    def __init__(self, src: Reader) -> None:
        self._src = src
        self._chunks: deque[bytes] = deque()
        self._first = 0  # bytes of _chunks[0] already used
        self.size = 0  # unused bytes held
        self._eof = False

    def fill(self, end: int) -> bool:
        """Hold at least ``end`` bytes; False if the stream ends first."""
        while self.size < end:
            data = b"" if self._eof else self._src.read(_READ)
            if not data:
                self._eof = True
                return False
            self._chunks.append(data)
            self.size += len(data)
        return True

    def need(self, end: int, what: str) -> None:
        """Hold at least ``end`` bytes; raise if the stream is shorter (it ends inside ``what``)."""
        if not self.fill(end):
            raise zstandard.ZstdError(f"zstd stream truncated inside {what}")

    def peek(self, pos: int, n: int) -> bytes:
        """The ``n`` bytes at ``pos`` (held already; a header's few bytes)."""
        pos += self._first
        out = []
        for chunk in self._chunks:
            if pos >= len(chunk):
                pos -= len(chunk)
                continue
            out.append(chunk[pos : pos + n])
            n -= len(out[-1])
            pos = 0
            if not n:
                break
        return out[0] if len(out) == 1 else b"".join(out)

    def take(self, n: int) -> list[bytes | memoryview]:
        """The first ``n`` bytes (held already), no longer held, as views of the chunks they span."""
        self.size -= n
        parts: list[bytes | memoryview] = []
        while n:
            chunk = self._chunks[0]
            avail = len(chunk) - self._first
            if n >= avail:
                parts.append(chunk if not self._first else memoryview(chunk)[self._first :])
                self._chunks.popleft()
                self._first = 0
                n -= avail
            else:
                parts.append(memoryview(chunk)[self._first : self._first + n])
                self._first += n
                n = 0
        return parts

    def drop(self, n: int) -> None:
        """Forget the first ``n`` bytes, reading (in bounded pieces) what is not held yet."""
        while n > self.size:
            n -= self.size
            self.take(self.size)
            self.need(1, "a skippable frame")
        self.take(n)

    def header(self) -> tuple[int, int, bool] | None:
        """At a frame's start: its header size, content size and checksum flag; None at the end.

        Skippable frames are skipped here. Raises if the bytes are not a frame.
        """
        src = self
        while src.fill(1):
            src.need(5, "a frame header")
            start = src.peek(0, 5)
            if _skippable(start):
                src.need(8, "a skippable frame")
                src.drop(8 + int.from_bytes(src.peek(4, 4), "little"))
                continue
            if start[:4] != _MAGIC:
                raise zstandard.ZstdError("not a zstd frame where one should start (trailing data?)")
            size = zstandard.frame_header_size(start)
            src.need(size, "a frame header")
            params = zstandard.get_frame_parameters(src.peek(0, size))
            return size, params.content_size, bool(params.has_checksum)
        return None

    def block(self, p: int) -> tuple[int, bool]:
        """The block whose header is at ``p``: where the next one starts, and whether it was the last."""
        self.need(p + 3, "a block header")
        return _next_block(int.from_bytes(self.peek(p, 3), "little"), p)

    def _at(self, pos: int) -> tuple[bytes, int]:
        """The chunk holding the byte at ``pos`` (held already), and where in it that byte is."""
        pos += self._first
        for chunk in self._chunks:
            if pos < len(chunk):
                return chunk, pos
            pos -= len(chunk)
        raise AssertionError("not held")  # callers need() first

    def walk_pooled(self, header: int, checksum: bool) -> int | None:
        """The end of the frame at the front, if it fits :data:`MAX_POOLED_IN`; else None (bytes kept).

        The walk reads the block headers inside each chunk in a tight loop (a frame of lfsreg
        has ~32 blocks); a header across two chunks goes through :meth:`block`.
        """
        p, last = header, False
        while not last:
            if p + 3 > MAX_POOLED_IN:
                return None
            self.need(p + 3, "a block header")
            chunk, at = self._at(p)
            if at + 3 > len(chunk):
                p, last = self.block(p)
                continue
            while at + 3 <= len(chunk) and p + 3 <= MAX_POOLED_IN:
                nxt, last = _next_block(chunk[at] | chunk[at + 1] << 8 | chunk[at + 2] << 16, p)
                at += nxt - p
                p = nxt
                if last:
                    break
        end = p + (4 if checksum else 0)
        if end > MAX_POOLED_IN:
            return None
        self.need(end, "a frame")
        return end

    def sequential(self, header: int, checksum: bool) -> Iterator[bytes]:
        """Decode the frame at the front in order, a few blocks per feed, taking its bytes."""
        dobj = zstandard.ZstdDecompressor().decompressobj()
        p, last = header, False
        while not last:
            for _ in range(_SEQ_BLOCKS):
                p, last = self.block(p)
                if last:
                    p += 4 if checksum else 0
                    break
            self.need(p, "a frame")
            out = dobj.decompress(b"".join(self.take(p)))
            p = 0  # the walk goes on from the front of what is left
            if out:
                yield out
        if not dobj.eof:
            raise zstandard.ZstdError("zstd frame did not end where its last block did")


def _decoded(stream: _Input, threads: int) -> Generator[bytes, None, None]:
    """The decoded pieces of ``stream``'s frames in order; at most ``threads + 2`` pooled frames in flight.

    A function, not a method of :class:`FrameReader`: the reader holds it and nothing holds the
    reader, so dropping the reader closes this generator at once, which stops the pool.
    """
    settle_allocator()
    frames: Ordered[list[bytes]] = Ordered(threads, threads + 1, "lfsreg-unzstd")
    try:
        while (found := stream.header()) is not None:
            header, size, checksum = found
            end = stream.walk_pooled(header, checksum) if size != _UNKNOWN and size <= MAX_POOLED else None
            if end is not None:
                for pieces in frames.submit(_decode, stream.take(end), size):
                    yield from pieces
                continue
            for pieces in frames.drain():  # what came before, then this frame in order
                yield from pieces
            yield from stream.sequential(header, checksum)
        for pieces in frames.drain():
            yield from pieces
    finally:
        frames.close()


class FrameReader:
    """Reads the decompressed bytes of the zstd stream ``src``; frames decoded on ``threads`` workers.

    ``read(n)`` returns at most ``n`` bytes (fewer is not the end: only ``b""`` is), and whole
    decoded pieces (:data:`PIECE` bytes) when ``n`` is at least their size, without copying them. At most
    ``threads + 2`` frames are in flight, so memory stays at a few frames whatever the stream's
    size. The pool ends with the stream, on the first error, or when the reader is collected.
    """

    def __init__(self, src: Reader, threads: int) -> None:
        self._outputs = _decoded(_Input(src), max(1, threads))
        self._head = b""  # the current output, from _off on not read yet
        self._off = 0

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` decompressed bytes (all that is left for ``n < 0``); ``b""`` at the end."""
        if n is None or n < 0:
            parts = [self._head[self._off :]]
            parts.extend(self._outputs)
            self._head, self._off = b"", 0
            return b"".join(parts)
        while self._off >= len(self._head):
            nxt = next(self._outputs, None)
            if nxt is None:
                return b""
            self._head, self._off = nxt, 0
        if self._off == 0 and len(self._head) <= n:
            data, self._head = self._head, b""
            return data
        data = self._head[self._off : self._off + n]
        self._off += len(data)
        return data

    def close(self) -> None:
        """Stop: the pool drops frames not started (also done when the reader is collected)."""
        self._outputs.close()


#: :func:`declared_size` gives up past this many frames or blocks per declared byte and this many more.
_WALK_SLACK = 1024


def declared_size(read_at: Callable[[int, int], bytes], length: int) -> int | None:
    """The decompressed size the frames of a zstd stream of ``length`` bytes declare, or None.

    ``read_at(pos, n)``: the stream's ``n`` bytes at ``pos`` (fewer at its end).

    Reads only the frames' and blocks' headers (a few bytes each, by position). None when a
    frame declares no content size, or when the walk would take more steps than real frames
    need (:data:`_WALK_SLACK` beyond one frame per 64 KiB and one block per 16 KiB declared):
    the caller measures another way. Nothing here is trusted: decoding checks each frame
    against its declared size. Raises :class:`zstandard.ZstdError` if the headers do not walk
    to exactly ``length`` bytes.
    """

    def at(pos: int, n: int, what: str) -> bytes:
        data = read_at(pos, n)
        if len(data) < n:
            raise zstandard.ZstdError(f"zstd stream truncated inside {what}")
        return data

    pos = total = frames = blocks = 0
    while pos < length:
        start = at(pos, max(5, min(18, length - pos)), "a frame header")  # a header is 5 to 18 bytes
        frames += 1  # skippable ones too: a stream of empty ones is no more walked to its end
        if frames > total // (64 << 10) + _WALK_SLACK:
            return None
        if len(start) >= 8 and _skippable(start):
            pos += 8 + int.from_bytes(start[4:8], "little")
            continue
        if start[:4] != _MAGIC:
            raise zstandard.ZstdError("not a zstd frame where one should start (trailing data?)")
        header = zstandard.frame_header_size(start)
        params = zstandard.get_frame_parameters(start[:header])
        if params.content_size == _UNKNOWN:
            return None
        total += params.content_size
        p, last = pos + header, False
        while not last:
            blocks += 1
            if blocks > total // (16 << 10) + _WALK_SLACK:
                return None
            p, last = _next_block(int.from_bytes(at(p, 3, "a block header"), "little"), p)
        pos = p + (4 if params.has_checksum else 0)
    if pos != length:
        raise zstandard.ZstdError("zstd stream truncated inside a frame")
    return total
