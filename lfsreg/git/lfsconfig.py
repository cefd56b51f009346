"""The LFS endpoint a registry's ``.lfsconfig`` names (git-lfs reads the same keys)."""

from __future__ import annotations

import io

from dulwich.config import ConfigFile

__all__ = ["lfs_url_from_lfsconfig"]


def lfs_url_from_lfsconfig(data: bytes) -> str | None:
    """``lfs.url`` (or ``remote.origin.lfsurl``) from a ``.lfsconfig`` file's content."""
    try:
        config = ConfigFile.from_file(io.BytesIO(data))
        for section, key in (((b"lfs",), b"url"), ((b"remote", b"origin"), b"lfsurl")):
            try:
                return config.get(section, key).decode()
            except KeyError:
                continue
    except (ValueError, UnicodeDecodeError):
        return None
    return None
