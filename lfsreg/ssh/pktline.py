"""git's pkt-line framing (``gitprotocol-common``), as the ``git-lfs-transfer`` protocol uses it.

A packet is four hex digits giving its length (header included) and the payload; ``0000`` is
a flush packet and ``0001`` a delimiter. Payloads are at most :data:`MAX_DATA` bytes. The
reader raises only :class:`lfsreg.errors.ProtocolError` (a malformed stream) and
:class:`lfsreg.errors.RetriableError` (the stream ended early: a cut), whatever the peer sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from ..errors import ProtocolError, RetriableError

MAX_DATA: Final = 65516  # payload limit: 65520 with the 4-byte header
FLUSH_PKT: Final = b"0000"
DELIM_PKT: Final = b"0001"
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")


class Marker:
    """A special packet (flush or delimiter); compared by identity."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


FLUSH: Final = Marker("FLUSH")
DELIM: Final = Marker("DELIM")
Packet = bytes | Marker


def encode(data: bytes) -> bytes:
    """One data packet holding ``data`` (at most :data:`MAX_DATA` bytes)."""
    if len(data) > MAX_DATA:
        raise ValueError(f"pkt-line payload of {len(data)} bytes exceeds {MAX_DATA}")
    return b"%04x" % (len(data) + 4) + data


def encode_text(line: str) -> bytes:
    """A text packet: ``line`` in UTF-8 with the trailing newline git's text packets carry."""
    return encode(line.encode() + b"\n")


class PacketReader:
    """Reads packets from ``read(n)`` (exactly ``n`` bytes, fewer only at end of stream).

    Args:
        read: the byte source.
        label: names the peer in error messages.
    """

    def __init__(self, read: Callable[[int], bytes], label: str) -> None:
        self._read = read
        self.label = label

    def packet(self) -> Packet:
        """The next packet: its payload, or :data:`FLUSH` / :data:`DELIM`."""
        head = self._read(4)
        if len(head) < 4:
            raise RetriableError(f"{self.label}: the connection closed")
        if not _HEX4.fullmatch(head):
            raise ProtocolError(f"{self.label}: malformed packet header {head!r}")
        size = int(head, 16)
        if size == 0:
            return FLUSH
        if size == 1:
            return DELIM
        if size < 4:
            raise ProtocolError(f"{self.label}: malformed packet length {size}")
        data = self._read(size - 4)
        if len(data) < size - 4:
            raise RetriableError(f"{self.label}: the connection closed mid-packet")
        return data

    def text(self, pkt: Packet | None = None) -> str:
        """A text packet (the next one if ``pkt`` is not given) without its newline."""
        if pkt is None:
            pkt = self.packet()
        if not isinstance(pkt, bytes):
            raise ProtocolError(f"{self.label}: expected a text packet, got {pkt!r}")
        return pkt.decode("utf-8", "replace").rstrip("\n")

    def lines(self) -> list[str]:
        """Text packets up to the next flush."""
        out = []
        while (pkt := self.packet()) is not FLUSH:
            out.append(self.text(pkt))
        return out
