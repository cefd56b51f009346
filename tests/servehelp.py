"""Helpers for ``lfsreg serve`` tests: a server in this process, and a runnable busybox image.

:func:`serving` runs :class:`lfsreg.RegistryServer` on a free port in a thread and stops it
afterwards. :func:`busybox_oci` writes an OCI layout holding a one-layer image of the static
busybox binary (Debian's busybox-static), which podman can run.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tests.gitenv import require_tool


@contextlib.contextmanager
def serving(repo: Path | str, **options: object) -> Iterator[object]:
    """A :class:`lfsreg.RegistryServer` for the registry at ``repo`` on 127.0.0.1 (any free port)."""
    import lfsreg

    registry = lfsreg.Registry(str(repo))
    server = lfsreg.RegistryServer(registry, lfsreg.ServeOptions(listen="127.0.0.1:0", **options))  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.close()
        registry.close()


def _blob(out: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = out / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def busybox_layer() -> tuple[bytes, bytes]:
    """``(tar, gzipped tar)`` of a root file system: ``/bin/busybox`` and a few of its applet links."""
    busybox = Path(require_tool("busybox")).resolve()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.mode, info.mtime, info.size = 0o755, 0, busybox.stat().st_size
        with open(busybox, "rb") as f:
            tar.addfile(info, f)
        for applet in ("sh", "echo", "cat", "ls", "uname"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "busybox", 0
            tar.addfile(link)
    plain = raw.getvalue()
    return plain, gzip.compress(plain, mtime=0)


def busybox_oci(out: Path, tag: str = "1") -> Path:
    """An OCI layout at ``out`` with one image (``tag``): busybox, ``sh`` as its command."""
    plain, packed = busybox_layer()
    out.mkdir(parents=True, exist_ok=True)
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(out, packed)}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(plain).hexdigest()}"]},
    }
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(out, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config_desc, "layers": [layer]}
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(out, json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}))
    return out


def free_env(tmp_path: Path) -> dict[str, str]:
    """An environment for client tools (skopeo, podman): their caches and auth under ``tmp_path``."""
    home = tmp_path / "client-home"
    home.mkdir(exist_ok=True)
    (home / "auth.json").write_text("{}")  # podman refuses a REGISTRY_AUTH_FILE that does not exist
    return {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home), "REGISTRY_AUTH_FILE": str(home / "auth.json")}
