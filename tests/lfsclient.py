"""lfsreg's HTTP LFS client (:class:`~lfsreg.lfs.http.HttpLfsStore`) pointed at a test server, and objects staged for it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy

#: Two retries, without their waits.
NO_WAIT = RetryPolicy(max_retries=2, sleep=lambda s: None)


def lfs_store(
    server: Any, tmp_path: Path, creds: list[Any] | None = None, *, policy: RetryPolicy = NO_WAIT, **settings: Any
) -> HttpLfsStore:
    """A client of ``server`` (its ``endpoint()``, or an endpoint URL) with its cache in ``tmp_path/cache``.

    ``settings`` are :class:`HttpSettings` fields; the socket timeout is 10 s unless they say.
    """
    endpoint = server if isinstance(server, str) else server.endpoint()
    settings.setdefault("timeout", 10)
    return HttpLfsStore(endpoint, creds or [], ObjectCache(str(Path(tmp_path) / "cache")), HttpSettings(policy=policy, **settings))


def stage(store: HttpLfsStore, data: bytes) -> tuple[LfsObject, str]:
    """``data`` staged in ``store`` for an upload: its LFS object and the staged file."""
    with store.staging() as (f, path):
        f.write(data)
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data)), path
