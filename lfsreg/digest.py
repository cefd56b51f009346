"""Content digests (``sha256:<hex>``) and the streaming hashers that produce them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from .errors import DigestMismatchError, InvalidReference

_HEX = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated content digest. ``hex`` is safe to use in file paths."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``; raise :class:`InvalidReference` if it is malformed."""
        algorithm, sep, hexpart = text.partition(":")
        pattern = _HEX.get(algorithm)
        if not sep or pattern is None or not pattern.fullmatch(hexpart):
            raise InvalidReference(f"invalid digest {text!r}: expected sha256:<64 lowercase hex>")
        return cls(algorithm, hexpart)

    @classmethod
    def sha256(cls, hexdigest: str) -> Digest:
        """Build a sha256 digest from its hex form (validated)."""
        return cls.parse("sha256:" + hexdigest)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        """Return the sha256 digest of ``data``."""
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex characters, as ``docker images`` shows an image ID."""
        return self.hex[:12]


class HashingReader:
    """Wrap a binary stream, hashing and counting what is read through it.

    ``verify(expected, size)`` checks the totals after the caller has read to EOF. The reader
    never reads past ``limit`` bytes when one is given, so an over-long source cannot make the
    caller buffer more than it declared.
    """

    def __init__(self, raw: BinaryIO, *, limit: int | None = None) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all remaining bytes for ``n < 0``)."""
        if self._limit is not None:
            left = self._limit - self.count
            if left <= 0:
                return b""
            n = left if n < 0 else min(n, left)
        data = self._raw.read(n)
        self._hash.update(data)
        self.count += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Read into ``buf``; used by buffered consumers such as :mod:`gzip`."""
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        """Always true: this is a reader."""
        return True

    def drain(self) -> None:
        """Read and hash whatever the caller left unread."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> Digest:
        """The digest of the bytes read so far."""
        return Digest("sha256", self._hash.hexdigest())

    def verify(self, expected: Digest, size: int | None, what: str) -> None:
        """Raise :class:`DigestMismatchError` unless the bytes read match ``expected``/``size``."""
        if size is not None and self.count != size:
            raise DigestMismatchError(f"{what}: expected {size} bytes, got {self.count}")
        if self.digest != expected:
            raise DigestMismatchError(f"{what}: expected {expected}, got {self.digest}")


def digest_file(path: str) -> tuple[Digest, int]:
    """Hash a file; return its digest and size."""
    with open(path, "rb") as f:
        reader = HashingReader(f)
        reader.drain()
    return reader.digest, reader.count
