"""Small docker-archives for retention tests: distinct images whose layers are random bytes.

Written with the standard library only (``tarfile``, ``json``, ``hashlib``), so the sizes a test
expects do not come from lfsreg. Random payloads do not compress: a stored layer is about as big
as its tar, which keeps disk measurements meaningful.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_archive(path: Path, ref: str, seed: str, payload: int, *, shared: bytes | None = None) -> Path:
    """A docker-archive of one image ``ref``: a layer of ``payload`` random bytes (+ ``shared``, a layer tar given)."""
    layers = [_tar({"data/payload.bin": random.Random(seed).randbytes(payload)})]
    if shared is not None:
        layers.insert(0, shared)
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": {"seed": seed}}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d[7:]}.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": names}]).encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in [(config_name, config), *zip(names, layers, strict=True), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def shared_layer(seed: str, size: int) -> bytes:
    """A layer tar to put into several images."""
    return _tar({"data/shared.bin": random.Random(seed).randbytes(size)})
