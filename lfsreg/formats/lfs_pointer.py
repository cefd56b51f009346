r"""Git LFS pointer files, spec v1 (git-lfs ``docs/spec.md``).

Exactly one encoding is written: ``version``, then ``oid sha256:<hex>``, then ``size``, each
line ending in ``\n``. Reading accepts the historical version URLs and extension lines, as
git-lfs does, and rejects anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..digest import Digest

VERSION = "https://git-lfs.github.com/spec/v1"
_VERSIONS = {VERSION, "https://hawser.github.com/spec/v1", "http://git-media.io/v/2"}
MAX_POINTER = 1024
_LINE = re.compile(r"([a-z0-9.-]+) ([^\r\n]*)")
_OID = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"[0-9]{1,19}")
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class LfsObject:
    """An LFS object: sha256 oid (hex) and size in bytes."""

    oid: str
    size: int

    @property
    def digest(self) -> Digest:
        """The oid as an OCI digest."""
        return Digest("sha256", self.oid)

    @classmethod
    def of(cls, digest: Digest, size: int) -> LfsObject:
        """The LFS object of a blob descriptor (the oid is the digest's hex)."""
        if digest.algorithm != "sha256":
            raise ValueError(f"LFS objects are sha256-addressed, not {digest.algorithm}")
        return cls(digest.hex, size)


def encode(obj: LfsObject) -> bytes:
    """The canonical pointer file for ``obj``."""
    return f"version {VERSION}\noid sha256:{obj.oid}\nsize {obj.size}\n".encode()


_CANONICAL = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize ([0-9]{1,19})\n")


def decode(data: bytes) -> LfsObject | None:
    """Parse a pointer file; return ``None`` if ``data`` is not a valid pointer."""
    exact = _CANONICAL.fullmatch(data)  # the one encoding written (:func:`encode`): no line-by-line parse
    if exact is not None and int(exact.group(2)) <= MAX_SIZE:
        return LfsObject(exact.group(1).decode(), int(exact.group(2)))
    if len(data) >= MAX_POINTER or not data.endswith(b"\n"):
        return None
    try:
        lines = data.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    keys: list[str] = []
    for line in lines:
        m = _LINE.fullmatch(line)
        if m is None:
            return None
        keys.append(m.group(1))
        fields[m.group(1)] = m.group(2)
    if not keys or keys[0] != "version" or fields["version"] not in _VERSIONS:
        return None
    rest = [k for k in keys[1:] if not k.startswith("ext-")]
    if rest != sorted(rest) or "oid" not in fields or "size" not in fields:
        return None
    oid = fields["oid"]
    size = fields["size"]
    # ASCII digits only (str.isdigit() also takes "²", which int() refuses), within git-lfs's int64.
    if not oid.startswith("sha256:") or not _OID.fullmatch(oid[7:]) or not _SIZE.fullmatch(size) or int(size) > MAX_SIZE:
        return None
    return LfsObject(oid[7:], int(size))
