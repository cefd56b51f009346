"""The fault server's object store: where objects live on disk, added and read by tests."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from fault_lfs.wire import CHUNK, OID_RE


class ObjectStore:
    """Objects under ``storage/objects/<oid[:2]>/<oid[2:4]>/<oid>``; uploads land in ``storage/incoming``
    first and are renamed into place (so a reader never sees half an object)."""

    storage: Path

    def object_path(self, oid: str) -> Path:
        """Where ``oid`` is (or would be) stored: ``objects/<oid[:2]>/<oid[2:4]>/<oid>``."""
        if not OID_RE.match(oid):
            raise ValueError(f"not a sha256 oid: {oid!r}")
        return self.storage / "objects" / oid[:2] / oid[2:4] / oid

    def has_object(self, oid: str) -> bool:
        """Whether ``oid`` is stored."""
        return self.object_path(oid).is_file()

    def object_size(self, oid: str) -> int | None:
        """Size of a stored object, or ``None``."""
        try:
            return self.object_path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def read_object(self, oid: str) -> bytes:
        """The bytes of a stored object (small objects only)."""
        return self.object_path(oid).read_bytes()

    def add_object(self, data: bytes) -> str:
        """Store ``data`` as if it had been uploaded; returns its oid."""
        oid = hashlib.sha256(data).hexdigest()
        tmp = self._incoming()
        tmp.write_bytes(data)
        self._commit_object(tmp, oid)
        return oid

    def add_object_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content (streamed); returns its oid."""
        digest = hashlib.sha256()
        tmp = self._incoming()
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        oid = digest.hexdigest()
        self._commit_object(tmp, oid)
        return oid

    def remove_object(self, oid: str) -> None:
        """Forget a stored object (no error when absent)."""
        self.object_path(oid).unlink(missing_ok=True)

    def _incoming(self) -> Path:
        return self.storage / "incoming" / uuid.uuid4().hex

    def _commit_object(self, tmp: Path, oid: str) -> None:
        dest = self.object_path(oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
