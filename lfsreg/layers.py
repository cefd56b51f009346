"""Staging one layer: copy or compress it into a staged LFS object, verifying as it goes.

Every path reads the source once and hashes each byte stream once: the source digest (or
diff_id) while reading, the stored digest while writing (the staged file is a
:class:`lfsreg.staging.VerifiedWriter`, which checks what the source claims before the block
that wrote it ends).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from . import mediatypes as mt
from .compression import ZSTD_FRAME, FeedDecompressor, Reader, compressor, sniff
from .digest import CHUNK, Digest, HashingReader
from .errors import CorruptContentError
from .formats.lfs_pointer import LfsObject
from .integrity import DiffIdCheck, VerifiedReader
from .manifest import Descriptor
from .pipeline import ReadAhead
from .progress import ProgressCallback, ProgressEvent
from .staging import HashedSource, VerifiedWriter


@dataclass(frozen=True, slots=True)
class PreparedLayer:
    """A source layer made ready for the registry's commit.

    Attributes:
        desc: the layer as the registry stores it (what the pushed manifest references).
        diff_id: its uncompressed digest (``None`` for an artifact's blobs).
        uncompressed_size: bytes after decompression, when known.
        staged: path of a staged file to upload, or ``None`` when the registry already has it.
    """

    desc: Descriptor
    diff_id: Digest | None
    uncompressed_size: int | None
    staged: str | None

    @property
    def lfs_object(self) -> LfsObject:
        """The LFS object holding the stored bytes."""
        return LfsObject.of(self.desc.digest, self.desc.size)


class LayerProgress:
    """Progress events for one layer."""

    def __init__(self, callback: ProgressCallback, key: str, total: int) -> None:
        self._callback = callback
        self._key = key
        self._total = total
        callback(ProgressEvent(key, "push", total))

    def step(self, n: int) -> None:
        """Report ``n`` more bytes."""
        self._callback(ProgressEvent(self._key, "push", self._total, n))

    def done(self) -> None:
        """Report the layer finished."""
        self._callback(ProgressEvent(self._key, "push", self._total, 0, True))


#: Opens a staged file: a :class:`lfsreg.staging.VerifiedWriter` that hashes what it is given, and its path.
Staging = Callable[[], AbstractContextManager[tuple[VerifiedWriter, str]]]


@dataclass(frozen=True, slots=True)
class Compression:
    """How to store plain layers: algorithm, level (``None``: default), zstd threads (0: one per core)."""

    algorithm: str
    level: int | None = None
    threads: int = 0


@dataclass(frozen=True, slots=True)
class LayerStaging:
    """Where and how a source that stages its own layers stages them."""

    staging: Staging
    compression: Compression
    progress: ProgressCallback


class HashedReader(Reader, HashedSource, Protocol):
    """A reader that hashes what it yields (:class:`lfsreg.digest.HashingReader`, :class:`lfsreg.integrity.VerifiedReader`)."""


def _pump(src: Reader, write: Callable[[bytes], object], progress: LayerProgress, chunk: int = CHUNK) -> None:
    while True:
        data = src.read(chunk)
        if not data:
            return
        write(data)
        progress.step(len(data))


def _nothing() -> None:
    pass


def stage_plain(
    src: HashedReader,
    finish: Callable[[], Digest],
    compression: Compression,
    staging: Staging,
    bar: LayerProgress,
    read_done: Callable[[], None] = _nothing,
) -> tuple[Descriptor, Digest, str]:
    """Stage a plain layer tar read from ``src``, compressed as asked.

    ``finish`` is called after the last byte was read and before the staged file is kept: it
    verifies (or computes) the diff_id and returns it; if it raises, the staged file is removed.
    Returns the stored descriptor, the diff_id and the staged path.

    ``src`` is read (and so hashed) on a thread of its own, a few chunks ahead of this one,
    which compresses (zstd: on a pool of ``compression.threads``), hashes and writes: a layer's
    stages run on all cores (:mod:`lfsreg.pipeline`, docs/format.md *Compression*).
    ``read_done`` is called once the source is read and verified and its last frames are with
    the pool: another layer may start then, while they are compressed and written.
    """
    chunk = ZSTD_FRAME if compression.algorithm == "zstd" else CHUNK
    ahead = ReadAhead(src, chunk=chunk, name="lfsreg-read")
    try:
        with staging() as (out, path):
            if compression.algorithm == "none":
                out.hashed_by(src)  # the staged bytes are the plain layer, hashed once as read
                _pump(ahead, out.write, bar, chunk)
                diff_id = finish()
                out.expect(diff_id.hex)  # and checked again when the file is kept
                stored = Descriptor(mt.OCI_LAYER, diff_id, out.count)
            else:
                comp = compressor(compression.algorithm, out, compression.level, compression.threads)  # type: ignore[arg-type]
                try:
                    _pump(ahead, comp.write, bar, chunk)
                    diff_id = finish()
                    comp.end_input()
                    read_done()
                    comp.finish()
                except BaseException:
                    comp.abort()
                    raise
                out.flush()
                stored = Descriptor(mt.OCI_LAYER_FOR[compression.algorithm], Digest("sha256", out.digest), out.count)
    finally:
        ahead.close()
    return stored, diff_id, path


def store_uncompressed(
    raw: BinaryIO,
    desc: Descriptor,
    compression: Compression,
    staging: Staging,
    progress: ProgressCallback,
    what: str,
    read_done: Callable[[], None] = _nothing,
) -> PreparedLayer:
    """Store an uncompressed layer (digest == diff_id), compressed as asked (or not); ``read_done``: see :func:`stage_plain`."""
    bar = LayerProgress(progress, str(desc.digest), desc.size)
    src = VerifiedReader(raw, desc.digest, desc.size, what)

    def finish() -> Digest:
        src.finish()
        return desc.digest

    stored, diff_id, path = stage_plain(src, finish, compression, staging, bar, read_done)
    bar.done()
    return PreparedLayer(stored, diff_id, desc.size, path)


def store_compressed(
    raw: BinaryIO,
    desc: Descriptor,
    algorithm: str,
    diff_id: Digest,
    staging: Staging,
    progress: ProgressCallback,
    what: str,
) -> PreparedLayer:
    """Store a compressed layer byte for byte, checking its digest and its diff_id."""
    check = DiffIdCheck(algorithm, diff_id, what)
    path = _store_as_is(raw, desc, staging, progress, what, check)
    return PreparedLayer(desc, diff_id, check.size, path)


def store_verbatim(raw: BinaryIO, desc: Descriptor, staging: Staging, progress: ProgressCallback, what: str) -> PreparedLayer:
    """Store an artifact blob byte for byte, checking its digest and size."""
    return PreparedLayer(desc, None, None, _store_as_is(raw, desc, staging, progress, what, None))


def _store_as_is(
    raw: BinaryIO, desc: Descriptor, staging: Staging, progress: ProgressCallback, what: str, check: DiffIdCheck | None
) -> str:
    """Stage ``raw`` byte for byte (digest and size checked, and ``check`` fed what it reads); return the staged path."""
    bar = LayerProgress(progress, str(desc.digest), desc.size)
    src = VerifiedReader(raw, desc.digest, desc.size, what, tap=check)
    with staging() as (out, path):
        out.expect(desc.digest.hex, desc.size)
        out.hashed_by(src)
        _pump(src, out.write, bar)
        src.finish()
    bar.done()
    return path


def stage_sniffed(reader: BinaryIO, key: str, size: int, how: LayerStaging, claimed: Digest | None = None) -> tuple[PreparedLayer, bool]:
    """Stage a layer of unknown compression (a ``docker save`` member): sniff, hash, stage.

    A compressed layer keeps its bytes (its digest and diff_id are both computed); a plain one
    is compressed as ``how`` asks. ``claimed``: the digest the member's name gives it (the
    digest of its bytes as they are), checked. Returns the layer and whether it arrived compressed.
    """
    head = reader.read(4)
    rest = io.BufferedReader(_Prefixed(head, reader))
    bar = LayerProgress(how.progress, key, size)
    algorithm = sniff(head)
    if algorithm != "none":
        layer = _stage_compressed(rest, key, size, algorithm, how.staging, bar, claimed)
    else:
        src = HashingReader(rest, limit=size)

        def finish() -> Digest:
            if src.count != size or (claimed is not None and src.digest != claimed):
                expected = f"{size} bytes of {claimed or 'any digest'}"
                raise CorruptContentError(f"{key}: got {src.count} bytes hashing to {src.digest}, expected {expected}")
            return src.digest

        stored, diff_id, path = stage_plain(src, finish, how.compression, how.staging, bar)
        layer = PreparedLayer(stored, diff_id, src.count, path)
    bar.done()
    return layer, algorithm != "none"


def _stage_compressed(
    reader: BinaryIO, key: str, size: int, algorithm: str, staging: Staging, bar: LayerProgress, claimed: Digest | None
) -> PreparedLayer:
    """Keep a compressed layer's bytes (checked against ``size`` and ``claimed``); compute its diff_id."""
    feed = FeedDecompressor(algorithm, key)
    try:
        with staging() as (out, path):
            out.expect(claimed.hex if claimed is not None else None, size, what=key)
            while data := reader.read(min(CHUNK, size - out.count + 1)):
                out.write(data)
                feed.feed(data)
                bar.step(len(data))
            plain, usize = feed.finish()
    finally:
        feed.abandon()
    desc = Descriptor(mt.OCI_LAYER_FOR[algorithm], Digest("sha256", out.digest), out.count)
    return PreparedLayer(desc, Digest("sha256", plain), usize, path)


class _Prefixed(io.RawIOBase):
    """``head`` (already read to sniff it) followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)
