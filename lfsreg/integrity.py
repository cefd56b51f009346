"""Verifying readers and atomic file writes shared by every transport."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Protocol

import zstandard

from .compression import FeedDecompressor, Reader
from .digest import CHUNK, Digest, HashingReader
from .errors import DigestMismatchError


class Verifying(Protocol):
    """A reader that checks what it read once finished (a :class:`VerifiedReader`, or a ReadAhead over one).

    Consumers stop at the declared size and call ``finish()``, which raises
    :class:`DigestMismatchError` unless every byte was as promised.
    """

    what: str

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...

    def finish(self) -> None:
        """Drain the rest and verify."""
        ...


class VerifiedReader:
    """Reads ``source`` while hashing; ``finish()`` drains it and checks digest and size.

    Consumers that stop at a known size (tar writers) must call ``finish()``; it also finishes
    ``inner`` (the compressed stream under a decompressing reader) so both layers of a layer
    (LFS oid and diff_id) are checked. Reading past ``size`` bytes is an error, so a source
    that is longer than declared is caught without buffering it.
    """

    def __init__(
        self,
        source: Reader,
        expected: Digest,
        size: int | None,
        what: str,
        inner: Verifying | None = None,
        tap: DiffIdCheck | None = None,
    ) -> None:
        self._hashing = HashingReader(source, limit=None)  # type: ignore[arg-type]
        self.expected = expected
        self.size = size
        self.what = what
        self._inner = inner
        self._tap = tap

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes; raise :class:`DigestMismatchError` once past ``size``.

        A decompressor below that fails (bad CRC, truncated frame) is reported the same way,
        naming this stream: the stored bytes are not what the digest promised.
        """
        try:
            data = self._hashing.read(n)
        except DigestMismatchError:
            raise
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise DigestMismatchError(f"{self.what}: corrupt data ({exc})") from exc
        if self.size is not None and self._hashing.count > self.size:
            raise DigestMismatchError(f"{self.what}: longer than the declared {self.size} bytes")
        if self._tap is not None and data:
            self._tap.feed(data)
        return data

    @property
    def count(self) -> int:
        """Bytes read so far."""
        return self._hashing.count

    @property
    def digest(self) -> Digest:
        """The digest of the bytes read so far."""
        return self._hashing.digest

    def finish(self) -> None:
        """Drain the rest and verify; raise :class:`DigestMismatchError` on any mismatch."""
        while self.read(CHUNK):
            pass
        try:
            if self._tap is not None:
                self._tap.end()  # a corrupt stream first, as when it was decoded while read
            self._hashing.verify(self.expected, self.size, self.what)
            if self._inner is not None:
                self._inner.finish()
        except BaseException:
            if self._tap is not None:
                self._tap.abandon()
            raise
        if self._tap is not None:
            self._tap.verify()


class DiffIdCheck:
    """Decompresses bytes fed to it on the side and checks the result against a diff_id.

    Used where compressed bytes are passed on unchanged (stored as they came, or copied to an
    OCI layout) but the uncompressed content must still match the image config. The decoding
    runs on threads of its own, a few chunks behind (:class:`lfsreg.compression.FeedDecompressor`),
    in bounded pieces whatever the stream expands to; ``size`` is known after :meth:`verify`.
    """

    def __init__(self, algorithm: str, diff_id: Digest, what: str) -> None:
        self._feed = FeedDecompressor(algorithm, what)
        self.diff_id = diff_id
        self.what = what
        self.size = 0
        self._plain: str | None = None  # the sha256 (hex) of the plain bytes, once ended

    def feed(self, data: bytes) -> None:
        """Account for the next compressed chunk (raises if what came before was corrupt)."""
        self._feed.feed(data)

    def end(self) -> None:
        """The end of the compressed stream: wait for its decoding; raise if it was corrupt or truncated."""
        if self._plain is None:
            self._plain, self.size = self._feed.finish()

    def verify(self) -> None:
        """Raise :class:`DigestMismatchError` unless the stream ended cleanly with the right digest."""
        self.end()
        got = Digest("sha256", self._plain or "")
        if got != self.diff_id:
            raise DigestMismatchError(f"{self.what}: uncompressed content is {got}, the config says {self.diff_id}")

    def abandon(self) -> None:
        """Stop decoding without a verdict (also done when this object is collected)."""
        self._feed.abandon()


@contextlib.contextmanager
def atomic_output(path: str, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write a file under a temporary name beside ``path`` and rename it into place.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lfsreg-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def copy_stream(src: Reader, dst: BinaryIO, *, chunk: int = CHUNK) -> int:
    """Copy ``src`` to ``dst`` in chunks; return the number of bytes copied."""
    total = 0
    while True:
        data = src.read(chunk)
        if not data:
            return total
        dst.write(data)
        total += len(data)
