"""Independent checks of images written by ``lfsreg pull`` (stdlib + zstandard only).

Used by the interop and concurrency tests: they re-verify every digest of a pulled OCI
layout or docker-archive without going through lfsreg's own code, and read the parts of
a docker-archive fixture that a test needs (config, uncompressed layer tars).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard
from clirun import check_no_crash

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def decompress(media_type: str, data: bytes) -> bytes:
    """The plain tar of a layer blob, by its media type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert media_type.endswith(".tar") or media_type.endswith("diff.tar"), media_type
    return data


def lfsreg(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the lfsreg CLI in a subprocess (``python -m lfsreg``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "lfsreg", *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    check_no_crash(proc)
    if check and proc.returncode != 0:
        raise AssertionError(f"lfsreg {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tags_of(repo: str | os.PathLike[str]) -> dict[str, str]:
    """``{"name:tag": "sha256:..."}`` from ``lfsreg tags REPO --format json``."""
    rows = json.loads(lfsreg("tags", repo, "--format", "json").stdout)
    return {f"{r['name']}:{r['tag']}": r["digest"] for r in rows}


@dataclass
class PulledImage:
    """One single-platform image found in a pulled output, every digest already checked."""

    ref: str | None
    manifest_digest: str | None
    config_digest: str
    diff_ids: list[str]
    layer_digests: list[str]


def _oci_blob(root: Path, desc: dict) -> bytes:
    algo, _, hexd = desc["digest"].partition(":")
    assert algo == "sha256"
    data = (root / "blobs" / algo / hexd).read_bytes()
    assert sha256_hex(data) == hexd, f"blob {desc['digest']} does not match its content"
    assert len(data) == desc["size"], f"blob {desc['digest']}: size {len(data)} != {desc['size']}"
    return data


def _oci_image(root: Path, desc: dict, ref: str | None, out: list[PulledImage]) -> None:
    data = _oci_blob(root, desc)
    doc = json.loads(data)
    media_type = doc.get("mediaType", desc["mediaType"])
    assert media_type == desc["mediaType"]
    if media_type in (OCI_INDEX, DOCKER_LIST):
        for child in doc["manifests"]:
            _oci_image(root, child, ref, out)
        return
    assert media_type in (OCI_MANIFEST, DOCKER_MANIFEST), media_type
    config = json.loads(_oci_blob(root, doc["config"]))
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(diff_ids) == len(doc["layers"])
    for layer, diff_id in zip(doc["layers"], diff_ids, strict=True):
        plain = decompress(layer["mediaType"], _oci_blob(root, layer))
        assert digest_of(plain) == diff_id, f"layer {layer['digest']}: uncompressed digest != diff_id {diff_id}"
    out.append(PulledImage(ref, desc["digest"], doc["config"]["digest"], diff_ids, [x["digest"] for x in doc["layers"]]))


def verify_oci_layout(path: str | os.PathLike[str]) -> list[PulledImage]:
    """Check every blob of an OCI layout and every layer's diff_id; return its images."""
    root = Path(path)
    assert json.loads((root / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    for blob in (root / "blobs" / "sha256").iterdir():
        assert sha256_hex(blob.read_bytes()) == blob.name, f"{blob} does not hash to its name"
    out: list[PulledImage] = []
    for desc in json.loads((root / "index.json").read_text())["manifests"]:
        ref = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        _oci_image(root, desc, ref, out)
    return out


@dataclass
class DockerArchive:
    """What a docker-archive holds for one image."""

    repo_tags: list[str]
    config: bytes
    config_digest: str
    diff_ids: list[str]
    layers: list[bytes]


def read_docker_archive(path: str | os.PathLike[str]) -> list[DockerArchive]:
    """Read every image of a docker-archive, checking config and layer digests."""
    out = []
    with tarfile.open(path) as tar:

        def member(name: str) -> bytes:
            f = tar.extractfile(os.path.normpath(name))
            assert f is not None, name
            return f.read()

        for entry in json.loads(member("manifest.json")):
            config = member(entry["Config"])
            config_digest = digest_of(config)
            assert os.path.basename(entry["Config"]).removesuffix(".json") == config_digest.removeprefix("sha256:")
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            layers = [member(name) for name in entry["Layers"]]
            assert [digest_of(layer) for layer in layers] == diff_ids, f"{path}: layers do not match the config's diff_ids"
            out.append(DockerArchive(entry.get("RepoTags") or [], config, config_digest, diff_ids, layers))
    return out


def verify_docker_archive(path: str | os.PathLike[str]) -> list[PulledImage]:
    """Check a docker-archive; return its images."""
    return [PulledImage(", ".join(a.repo_tags) or None, None, a.config_digest, a.diff_ids, a.diff_ids) for a in read_docker_archive(path)]


def source_image(source: str) -> PulledImage:
    """The single image of a fixture source (``oci:DIR:REF`` or ``docker-archive:PATH``), verified."""
    kind, _, rest = source.partition(":")
    if kind == "docker-archive":
        (image,) = verify_docker_archive(rest.split(":", 1)[0])
        return image
    assert kind == "oci"
    path, _, ref = rest.partition(":")
    images = [i for i in verify_oci_layout(path) if not ref or i.ref == ref]
    assert len(images) == 1, images
    return images[0]
