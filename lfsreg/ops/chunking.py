"""Splitting a staged layer larger than the registry's object limit into chunks (docs/format.md).

A chunk is an ordinary LFS object: bytes ``[i * limit, (i + 1) * limit)`` of the layer's stored
blob, addressed by their own sha256. The layer's digest is unchanged (the manifest still names
the whole blob); pull reads the chunks in order (:class:`JoinedObjects`) and checks the digest
end to end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import BinaryIO

from ..digest import CHUNK
from ..errors import CorruptContentError, UsageError
from ..formats.lfs_pointer import LfsObject
from ..integrity import VerifiedReader
from ..layers import PreparedLayer
from ..lfs.store import LfsStore
from ..staging import Reader, forget

#: The smallest object limit accepted: below it a layer would be cut into absurdly many pieces.
MIN_LIMIT = 64 << 10


def check_limit(limit: int | None) -> int | None:
    """``limit`` if usable as an object size limit; :class:`UsageError` if it is too small."""
    if limit is not None and limit < MIN_LIMIT:
        raise UsageError(f"limits.object of {limit} bytes is too small to store layers in (at least {MIN_LIMIT} bytes)")
    return limit


def split_staged(layer: PreparedLayer, limit: int, lfs: LfsStore) -> list[tuple[LfsObject, str]]:
    """Cut the staged file of ``layer`` into staged chunk files of at most ``limit`` bytes, in order.

    The layer's own staged file is removed once its chunks are staged; if anything fails, the
    chunks staged so far are removed and the layer's file stays.
    """
    assert layer.staged is not None
    with open(layer.staged, "rb") as src:
        parts = split_reader(src, layer.desc.size, limit, lfs, f"staged layer {layer.desc.digest}")
    forget(layer.staged, remove=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layer.staged)
    return parts


def split_reader(src: Reader, size: int, limit: int, lfs: LfsStore, what: str) -> list[tuple[LfsObject, str]]:
    """Stage ``size`` bytes read from ``src`` as chunk files of at most ``limit`` bytes, in order.

    Each chunk is hashed as it is written (its oid). :class:`CorruptContentError` (and every
    chunk removed) if ``src`` holds other than ``size`` bytes; the caller checks the content.
    """
    parts: list[tuple[LfsObject, str]] = []
    try:
        while True:
            with lfs.staging() as (out, path):
                left = limit
                while left and (data := src.read(min(CHUNK, left))):
                    out.write(data)
                    left -= len(data)
            if out.count == 0:
                forget(path, remove=True)
                break
            parts.append((LfsObject(out.digest, out.count), path))
            if out.count < limit:
                break
        total = sum(obj.size for obj, _ in parts)
        if total != size or src.read(1):
            raise CorruptContentError(f"{what}: expected {size} bytes to cut into chunks, got {total if total != size else 'more'}")
    except BaseException:
        for _, path in parts:
            forget(path, remove=True)
        raise
    return parts


class JoinedObjects:
    """The LFS objects of a layer (its chunks) read one after the other, each opened when reached.

    The layer's digest, checked by the caller over the whole stream, vouches for the order and the
    content. ``check_each`` also checks each object against its own oid and size as it ends, so
    that a damaged one is named (verify); without it nothing is hashed twice (pull).
    """

    def __init__(self, objects: list[LfsObject], open_object: Callable[[LfsObject], BinaryIO], *, check_each: bool = False) -> None:
        self._todo = list(objects)
        self._open = open_object
        self._check_each = check_each
        self._file: BinaryIO | None = None
        self._current: BinaryIO | VerifiedReader | None = None

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the joined stream; ``b""`` at its end."""
        while True:
            if self._current is None:
                if not self._todo:
                    return b""
                obj = self._todo.pop(0)
                self._file = self._current = self._open(obj)
                if self._check_each:
                    self._current = VerifiedReader(self._file, obj.digest, obj.size, f"LFS object sha256:{obj.oid}")
            data = self._current.read(n)
            if data:
                return data
            if isinstance(self._current, VerifiedReader):
                self._current.finish()
            self.close()

    def close(self) -> None:
        """Close the object being read (the next read opens the next one)."""
        if self._file is not None:
            self._file.close()
        self._file = self._current = None
