"""Small images built by hand (stdlib only), as a registry client would send them piece by piece."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Image:
    """A one-layer image: its blobs (digest -> bytes), config, manifest bytes and digest."""

    blobs: dict[str, bytes]
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    def descriptor(self, platform: dict | None = None) -> dict:
        desc = {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": len(self.manifest)}
        if platform:
            desc["platform"] = platform
        return desc


def image(text: str, *, compression: str = "gzip", arch: str = "amd64", subject: dict | None = None) -> Image:
    raw = tar_of({"hello.txt": text.encode()})
    layer = gzip.compress(raw, mtime=0) if compression == "gzip" else zstandard.ZstdCompressor().compress(raw)
    config = dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(raw)]}})
    ltype = "application/vnd.oci.image.layer.v1.tar+" + compression
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": ltype, "digest": sha(layer), "size": len(layer)}],
    }
    if subject is not None:
        manifest["subject"] = subject
    return Image({sha(config): config, sha(layer): layer}, config, layer, dumps(manifest))


def index_of(*images: Image) -> bytes:
    arches = ["amd64", "arm64", "s390x", "ppc64le"]
    return dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [im.descriptor({"os": "linux", "architecture": arches[i]}) for i, im in enumerate(images)],
        }
    )
