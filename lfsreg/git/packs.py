"""Reading many objects out of a repository's packs quickly, for whole-registry walks.

dulwich reads one object at a time through several layers (index bisection in Python,
buffered zlib reads, an object built per read): about 50 µs an object, which is seconds on
a registry of 30,000 images. A :class:`PackReader` loads a pack's index once (``.idx``
version 2: its ids and offsets; the table of them is built only when many are looked up), maps
the pack, and then reads an object with one dictionary look-up and one ``zlib.decompress``: a few µs. Deltas are
resolved here too (against a small cache of bases, so a chain is unpacked once).

Only what a reader is sure of is answered: an object it does not hold, an index it cannot
read, a pack that went away gives ``None`` and the caller asks dulwich (loose objects,
packs written since, alternates). Damage is reported as :class:`CorruptContentError`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable

from dulwich.pack import apply_delta

from ..errors import CorruptContentError

_IDX_MAGIC = b"\377tOc"
_OFS_DELTA, _REF_DELTA = 6, 7
_BASES = 256  # resolved delta bases kept (a pack's delta chains are at most 50 deep by default)
_BASE_BYTES = 1 << 16  # only small bases are kept: registry trees and documents are small
#: Look-ups answered by searching the index before its table is built: building it costs about
#: what 2,000 searches do (0.05 s for 200,000 objects), and most walks that look up this few
#: objects (a ``du`` whose memo knows the rest) look up nothing more.
_SEARCHES = 256

#: looks an object up by binary id anywhere in the repository: (type, content), or None
Lookup = Callable[[bytes], "tuple[int, bytes] | None"]


def entry_header(m: bytes | mmap.mmap, offset: int) -> tuple[int, int, int]:
    """``(type, inflated size, position after the header)`` of the pack entry at ``offset`` (git's size varint)."""
    c = m[offset]
    kind, size, pos, shift = (c >> 4) & 7, c & 15, offset + 1, 4
    while c & 0x80:
        c = m[pos]
        pos += 1
        size |= (c & 0x7F) << shift
        shift += 7
    return kind, size, pos


def ofs_distance(m: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    """``(distance back to the base, position after it)`` of the OFS_DELTA base offset at ``pos``."""
    c = m[pos]
    pos += 1
    back = c & 0x7F
    while c & 0x80:
        c = m[pos]
        pos += 1
        back = ((back + 1) << 7) | (c & 0x7F)
    return back, pos


class PackReader:
    """One pack (``pack-*.pack`` + its ``.idx``), read through a map of the file."""

    def __init__(self, idx_path: str, pack_path: str, *, searches: int = _SEARCHES) -> None:
        with open(idx_path, "rb") as f:
            idx = f.read()
        if idx[:8] != _IDX_MAGIC + b"\0\0\0\2" or len(idx) < 8 + 1024 + 40:
            raise ValueError(f"{idx_path}: not a version 2 pack index")
        count = struct.unpack_from(">I", idx, 8 + 255 * 4)[0]
        names = 8 + 1024
        small = names + 24 * count  # after the ids and their CRC-32s
        if len(idx) < small + 4 * count + 40:
            raise ValueError(f"{idx_path}: truncated")
        ids = idx[names : names + 20 * count]
        offsets = array("I")
        offsets.frombytes(idx[small : small + 4 * count])
        if struct.pack("=I", 1) != struct.pack(">I", 1):
            offsets.byteswap()
        big = small + 4 * count
        where: array[int] | list[int] = offsets
        if count and max(offsets) & 0x80000000:  # packs over 2 GiB: 8-byte offsets for the far ones
            where = [struct.unpack_from(">Q", idx, big + 8 * (o & 0x7FFFFFFF))[0] if o & 0x80000000 else o for o in offsets]
        self._ids, self._where = ids, where
        self._fanout = (0, *struct.unpack_from(">256I", idx, 8))  # objects whose first byte is below b: _fanout[b]
        self._offsets: dict[bytes, int] | None = None  # built on the (_SEARCHES + 1)th look-up
        self._searches = searches  # how many look-ups search before the table is built
        with open(pack_path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self._map[:4] != b"PACK" or len(self._map) < 32:
            self.close()
            raise ValueError(f"{pack_path}: not a pack")
        self._end = len(self._map) - 20  # the pack's trailing checksum
        self._bases: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self.path = pack_path

    def close(self) -> None:
        """Release the map (reads after this fail)."""
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()

    def offset(self, sha: bytes) -> int | None:
        """Where the object with binary id ``sha`` starts in the pack, or ``None`` if the pack lacks it."""
        table = self._offsets
        if table is None:
            if self._searches > 0:
                self._searches -= 1
                return self._search(sha)
            table = self._offsets = dict(zip([self._ids[i : i + 20] for i in range(0, len(self._ids), 20)], self._where, strict=True))
        return table.get(sha)

    def _search(self, sha: bytes) -> int | None:
        """:meth:`offset` by a search of the index's sorted ids, between the fan-out table's bounds for its first byte."""
        if len(sha) != 20:
            return None
        ids, end = self._ids, 20 * self._fanout[sha[0] + 1]
        pos = ids.find(sha, 20 * self._fanout[sha[0]], end)
        while pos > 0 and pos % 20:  # found straddling two ids: look further
            pos = ids.find(sha, pos + 1, end)
        return None if pos < 0 else self._where[pos // 20]

    def get(self, sha: bytes, lookup: Lookup) -> tuple[int, bytes] | None:
        """``(type, content)`` of the object with binary id ``sha``, or ``None`` if the pack lacks it.

        :meth:`offset` and :meth:`read` in one call, the header of a whole object decoded
        inline: a registry walk makes hundreds of thousands of these.
        """
        table = self._offsets
        offset = table.get(sha) if table is not None else self.offset(sha)
        return None if offset is None else self.at(offset, lookup)

    def at(self, offset: int, lookup: Lookup) -> tuple[int, bytes]:
        """:meth:`read` of the object at ``offset``, a whole object's header decoded inline.

        Not by :func:`entry_header`: this is the listing's hot path, one call per object less.
        """
        m = self._map
        try:
            c = m[offset]
            kind = (c >> 4) & 7
            if 0 < kind < 5:
                size, pos, shift = c & 15, offset + 1, 4
                while c & 0x80:
                    c = m[pos]
                    pos += 1
                    size |= (c & 0x7F) << shift
                    shift += 7
                try:
                    data = zlib.decompress(m[pos : pos + size + 5 * (size >> 14) + 64])
                except zlib.error:
                    data = self._inflate(pos, size)
                if len(data) == size:
                    return kind, data
        except (IndexError, zlib.error, OverflowError):  # Overflow: a damaged header's size
            pass
        return self.read(offset, lookup)  # a delta, or damage: named there

    def head(self, sha: bytes, limit: int) -> tuple[int, bytes] | None:
        """Type and first ``limit`` bytes (at most) of the whole object ``sha``; ``None`` if absent, a delta, or unreadable here.

        For a commit's header (its tree and parents) without inflating a message of megabytes.
        """
        offset = self.offset(sha)
        if offset is None:
            return None
        m = self._map
        try:
            kind, size, pos = entry_header(m, offset)
            if not 0 < kind < 5:
                return None
            return kind, zlib.decompressobj().decompress(m[pos : pos + min(size, limit) + 5 * (limit >> 14) + 4096], limit)
        except (IndexError, zlib.error, OverflowError):
            return None

    def _inflate(self, pos: int, size: int) -> bytes:
        """The zlib stream at ``pos`` that inflates to ``size`` bytes (what follows it is ignored)."""
        # zlib adds 11 bytes and 5 a stored block of 16 KiB at worst: read that much first,
        # and the rest of the pack only for a stream written some odder way.
        try:
            return zlib.decompress(self._map[pos : pos + size + 5 * (size >> 14) + 64])
        except zlib.error:
            inflater = zlib.decompressobj()
            data = inflater.decompress(self._map[pos : self._end], size + 1)
            if not inflater.eof:
                raise
            return data

    def read(self, offset: int, lookup: Lookup) -> tuple[int, bytes]:
        """``(type, content)`` of the object at ``offset``; deltas resolved (a REF_DELTA's base via ``lookup``)."""
        m = self._map
        try:
            kind, size, pos = entry_header(m, offset)
            if kind < _OFS_DELTA:  # a whole object: the common case, kept short
                try:
                    data = zlib.decompress(m[pos : pos + size + 5 * (size >> 14) + 64])
                except zlib.error:
                    data = self._inflate(pos, size)
                if len(data) != size or not 0 < kind < 5:
                    raise CorruptContentError(f"{self.path}: the object at offset {offset} has a bad header (type {kind}, {size} bytes)")
                return kind, data
            return self._delta(offset, kind, size, pos, lookup)
        except (IndexError, zlib.error, OverflowError) as exc:
            raise CorruptContentError(f"{self.path}: the object at offset {offset} is damaged: {exc}") from None

    def _delta(self, offset: int, kind: int, size: int, pos: int, lookup: Lookup) -> tuple[int, bytes]:
        cached = self._bases.get(offset)
        if cached is not None:
            self._bases.move_to_end(offset)
            return cached
        m = self._map
        if kind == _OFS_DELTA:
            back, pos = ofs_distance(m, pos)
            if not 0 < back <= offset - 12:
                raise CorruptContentError(f"{self.path}: a delta at offset {offset} points outside the pack")
            base = self.read(offset - back, lookup)
        else:
            found = lookup(bytes(m[pos : pos + 20]))
            pos += 20
            if found is None:
                raise CorruptContentError(f"{self.path}: the base of the delta at offset {offset} is missing")
            base = found
        delta = self._inflate(pos, size)
        if len(delta) != size:
            raise CorruptContentError(f"{self.path}: the delta at offset {offset} has {len(delta)} bytes, its header says {size}")
        try:
            out = base[0], b"".join(apply_delta(base[1], delta))
        except (ValueError, AssertionError, IndexError, TypeError) as exc:
            raise CorruptContentError(f"{self.path}: the delta at offset {offset} does not apply: {exc}") from None
        if len(out[1]) <= _BASE_BYTES:  # it may be the base of the next one in its chain
            self._bases[offset] = out
            if len(self._bases) > _BASES:
                self._bases.popitem(last=False)
        return out


def open_packs(objects_dir: str, *, searches: int = _SEARCHES) -> list[PackReader]:
    """A reader for every readable pack of the ``objects`` directory, newest first (as git looks them up).

    ``searches``: look-ups answered by searching the index before a pack's table is built.
    """
    pack_dir = os.path.join(objects_dir, "pack")
    try:
        names = [n for n in os.listdir(pack_dir) if n.startswith("pack-") and n.endswith(".idx")]
    except OSError:
        return []
    found: list[tuple[float, PackReader]] = []
    for name in names:
        base = os.path.join(pack_dir, name[: -len(".idx")])
        try:
            found.append((os.stat(base + ".pack").st_mtime, PackReader(base + ".idx", base + ".pack", searches=searches)))
        except (OSError, ValueError, struct.error):
            continue  # gone since the listing, half-written, or a format this reader leaves to dulwich
    return [reader for _, reader in sorted(found, key=lambda f: -f[0])]


__all__ = ["Lookup", "PackReader", "open_packs"]
