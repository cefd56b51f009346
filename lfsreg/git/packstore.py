"""Keeping a pack a git server sent as a pack of the mirror, indexed here in one pass.

dulwich's ``add_thin_pack`` builds an object per entry to learn its id (a tree is parsed to be
hashed): about 50 µs an entry, seconds for the tens of thousands of trees and tag files of a
whole-registry listing, and parsing a 30,000-entry tree three times for ``tags REPO NAME``.
:func:`store_pack` inflates each entry once, hashes it, and writes the pack's index (``.idx``
version 2) itself: a few µs an entry. Ids are computed from the content, so whatever the server
sent can only be stored under its own ids; the pack's checksum, its object count and every
entry's header are checked, and a pack that does not hold together is refused
(:class:`ProtocolError`). A delta against an object the pack lacks (a thin pack, which the
fetches here do not ask for) is left to dulwich: :func:`store_pack` returns ``False``.

Files appear whole or not at all: the pack is renamed into place first, then its index (a
reader looks for indexes), so a process killed half-way leaves a temporary file only.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import mmap
import os
import struct
import tempfile
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

from dulwich.pack import apply_delta

from ..errors import ProtocolError
from .objects import OBJECT_HEADS, object_id, storage_error
from .packs import entry_header, ofs_distance

__all__ = ["ANSWER_PREFIX", "answer_file", "store_pack"]

ANSWER_PREFIX = "tmp_pack_answer_"  # an answer being received (dulwich's and git's tmp_pack_ prefix: git gc knows it)

_OFS_DELTA, _REF_DELTA = 6, 7
_KEPT = 256  # inflated objects kept as delta bases (a server's chains are short): 16 MiB at most
_KEPT_BYTES = 1 << 16
#: The most content :func:`store_pack` hands its caller: a whole ``repositories/`` at 30,000 images (7 MB of
#: trees and tag files, read again at 10 µs each), not all of ``blobs/`` (25 MB: 20 MB more peak memory for an
#: ``images`` whose time goes to parsing the documents)
FRESH_BYTES = 8 << 20


class _Unresolved(Exception):
    """A delta's base is not in the pack."""


class _Entries:
    """The entries of one pack: where each starts, its kind and size, where its data starts, its delta base."""

    def __init__(self, data: mmap.mmap, what: str) -> None:
        self.data, self.what = data, what
        self.end = len(data) - 20
        self.at: dict[int, tuple[int, int, int, int | bytes | None]] = {}  # offset -> kind, size, data pos, base
        self.ids: dict[bytes, int] = {}  # binary id -> offset, of the entries hashed so far (once a delta names a base by id)
        self._kept: OrderedDict[int, tuple[int, bytes]] = OrderedDict()

    def bad(self, offset: int, why: str) -> ProtocolError:
        return ProtocolError(f"{self.what}: the git server sent a damaged pack (the entry at offset {offset} {why})")

    def header(self, offset: int) -> tuple[int, int, int, int | bytes | None]:
        m = self.data
        kind, size, pos = entry_header(m, offset)
        base: int | bytes | None = None
        if kind == _OFS_DELTA:
            back, pos = ofs_distance(m, pos)
            base = offset - back
            if base not in self.at:
                raise self.bad(offset, "is a delta against no entry before it")
        elif kind == _REF_DELTA:
            base = bytes(m[pos : pos + 20])
            pos += 20
        elif kind not in OBJECT_HEADS:
            raise self.bad(offset, f"has type {kind}")
        return kind, size, pos, base

    def inflate(self, offset: int, pos: int, size: int) -> tuple[bytes, int]:
        """The ``size`` bytes the zlib stream at ``pos`` inflates to, and where the stream ends."""
        stop = min(pos + size + 5 * (size >> 14) + 64, self.end)  # zlib's worst case but for odd writers: then on in steps
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(self.data[pos:stop], size + 1)
            while not inflater.eof and not inflater.unconsumed_tail and len(body) <= size and stop < self.end:
                step = min(stop + (1 << 16), self.end)
                body += inflater.decompress(self.data[stop:step], size + 1 - len(body))
                stop = step
        except zlib.error as exc:
            raise self.bad(offset, f"does not inflate: {exc}") from None
        if not inflater.eof or len(body) != size:
            raise self.bad(offset, f"inflates to {len(body)} bytes, its header says {size}")
        return body, stop - len(inflater.unused_data)

    def content(self, offset: int) -> tuple[int, bytes]:
        """``(kind, content)`` of the entry at ``offset``, deltas applied (down the chain, then back up: no recursion).

        Raises :class:`_Unresolved` with the id of the first base on the way that is not known yet.
        """
        chain: list[int] = []
        at = offset
        while True:
            kept = self._kept.get(at)
            if kept is not None:
                kind, body = kept
                break
            kind, size, pos, base = self.at[at]
            if base is None:
                body = self.inflate(at, pos, size)[0]
                break
            if isinstance(base, bytes):
                found = self.ids.get(base)
                if found is None:
                    raise _Unresolved(base)
                base = found
            chain.append(at)
            if len(chain) > len(self.at):
                raise self.bad(offset, "is a delta whose chain of bases loops")
            at = base
        for at in reversed(chain):
            _, size, pos, _ = self.at[at]
            try:
                body = b"".join(apply_delta(body, self.inflate(at, pos, size)[0]))
            except (ValueError, AssertionError, IndexError, TypeError) as exc:
                raise self.bad(at, f"is a delta that does not apply: {exc}") from None
            if len(body) <= _KEPT_BYTES:  # it may be the base of the next delta of its chain
                self._kept[at] = kind, body
                if len(self._kept) > _KEPT:
                    self._kept.popitem(last=False)
        return kind, body


def _index(m: mmap.mmap, what: str, fresh: dict[bytes, tuple[int, bytes]] | None = None) -> tuple[list[tuple[bytes, int, int]], bytes]:
    """``(binary id, crc32, offset)`` of every entry of the pack mapped at ``m``, and its checksum.

    ``fresh``: filled with ``binary id -> (type, content)`` of the entries, up to :data:`FRESH_BYTES`.
    """
    if len(m) < 32 or m[:4] != b"PACK" or struct.unpack_from(">I", m, 4)[0] not in (2, 3):
        raise ProtocolError(f"{what}: the git server sent no pack")
    checksum = bytes(m[-20:])
    with memoryview(m) as view:
        whole = hashlib.sha1(view[:-20]).digest()
    if whole != checksum:
        raise ProtocolError(f"{what}: the git server sent a damaged pack (its checksum does not match)")
    count = struct.unpack_from(">I", m, 8)[0]
    entries = _Entries(m, what)
    found: list[tuple[bytes, int, int]] = []
    waiting: dict[bytes, list[tuple[int, int]]] = {}  # a base's id -> the deltas (offset, crc32) that wait for it
    offset = 12
    by_id = False  # a delta names its base by id: ids are looked up from then on (git sends offsets)
    room = FRESH_BYTES if fresh is not None else 0

    def known(sha: bytes, crc: int, at: int, kind: int, body: bytes) -> None:
        nonlocal room
        found.append((sha, crc, at))
        if len(body) < room:
            fresh[sha] = kind, body  # type: ignore[index]  # room is 0 without fresh
            room -= len(body)
        if not by_id:
            return
        entries.ids.setdefault(sha, at)
        ready = waiting.pop(sha, [])
        while ready:  # the deltas that waited for it, and those that waited for them
            at, crc = ready.pop()
            try:
                kind, body = entries.content(at)
            except _Unresolved as exc:  # another base further down its chain
                waiting.setdefault(exc.args[0], []).append((at, crc))
                continue
            sha = object_id(kind, body)
            found.append((sha, crc, at))
            entries.ids.setdefault(sha, at)
            ready += waiting.pop(sha, [])

    try:
        for _ in range(count):
            kind, size, pos, base = header = entries.header(offset)
            entries.at[offset] = header
            body, end = entries.inflate(offset, pos, size)
            crc = zlib.crc32(m[offset:end])
            if base is not None:
                if kind == _REF_DELTA and not by_id:
                    by_id = True
                    for sha, _, at in found:
                        entries.ids.setdefault(sha, at)
                try:
                    kind, body = entries.content(offset)
                except _Unresolved as exc:  # a base later in the pack (or not in it: a thin pack)
                    waiting.setdefault(exc.args[0], []).append((offset, crc))
                    offset = end
                    continue
            known(object_id(kind, body), crc, offset, kind, body)
            offset = end
    except IndexError:
        raise entries.bad(offset, "is cut short") from None
    if offset != entries.end:
        raise ProtocolError(f"{what}: the git server sent a damaged pack ({entries.end - offset} bytes after its {count} entries)")
    if waiting:
        raise _Unresolved(next(iter(waiting)))
    return found, checksum


def _idx_bytes(found: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """A pack index, version 2, of ``found`` (sorted here; a repeated id is kept once)."""
    found.sort()
    if any(a[0] == b[0] for a, b in itertools.pairwise(found)):  # the same object twice (same content): one entry
        found = sorted({entry[0]: entry for entry in found}.values())
    ids = b"".join(sha for sha, _, _ in found)
    firsts = ids[::20]
    fanout = array("I", [bisect.bisect_right(firsts, b) for b in range(256)])
    crcs = array("I", [crc for _, crc, _ in found])
    small = array("I")
    large = array("Q")
    for _, _, offset in found:
        if offset < 0x80000000:
            small.append(offset)
        else:
            small.append(0x80000000 | len(large))
            large.append(offset)
    if struct.pack("=I", 1) != struct.pack(">I", 1):
        for table in (fanout, crcs, small, large):
            table.byteswap()
    body = b"".join(
        [
            b"\377tOc\0\0\0\2",
            fanout.tobytes(),
            ids,
            crcs.tobytes(),
            small.tobytes(),
            large.tobytes(),
            checksum,
        ]
    )
    return body + hashlib.sha1(body).digest()


@contextlib.contextmanager
def answer_file(pack_dir: str) -> Iterator[tuple[BinaryIO, str]]:
    """A temporary file in ``pack_dir`` for one answer, and its path: :func:`store_pack` moves it into place, or it is removed."""
    try:
        fd, name = tempfile.mkstemp(prefix=ANSWER_PREFIX, dir=pack_dir)
    except OSError as exc:
        raise storage_error(exc, pack_dir) from None
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f, name
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def store_pack(pack_dir: str, path: str, what: str, fresh: dict[bytes, tuple[int, bytes]] | None = None) -> bool:
    """Index the pack at ``path`` (a temporary file in ``pack_dir``) and move it into ``pack_dir``.

    ``what`` names the repository in errors. ``False``: a thin pack, left where it is for the
    caller (dulwich resolves its deltas against the repository). Raises :class:`ProtocolError`
    for a damaged pack, ``OSError`` for the disk. ``fresh``: given the contents inflated here,
    ``binary id -> (type, content)`` (up to :data:`FRESH_BYTES`), once the pack is in place:
    they hash to their ids, so a read of them need neither inflate nor check them again.
    """
    inflated: dict[bytes, tuple[int, bytes]] | None = {} if fresh is not None else None
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ProtocolError(f"{what}: the git server sent no pack")
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        try:
            found, checksum = _index(m, what, inflated)
        except _Unresolved:
            return False
    finally:
        with contextlib.suppress(BufferError):
            m.close()
    base = os.path.join(pack_dir, f"pack-{checksum.hex()}")
    if os.path.exists(base + ".idx"):
        os.unlink(path)  # the same pack, fetched before
        if fresh is not None and inflated:
            fresh.update(inflated)
        return True
    idx = _idx_bytes(found, checksum)
    tmp = f"{path}.idx"
    with open(tmp, "wb") as f:
        f.write(idx)
    os.chmod(path, 0o444)
    os.chmod(tmp, 0o444)
    os.replace(path, base + ".pack")
    os.replace(tmp, base + ".idx")
    if fresh is not None and inflated:
        fresh.update(inflated)
    return True
