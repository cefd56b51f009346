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
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

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


#: Text that never belongs in a CLI run's output, whatever its exit code: an unhandled
#: exception, or one swallowed by the interpreter (``__del__``, a closing thread) that a
#: zero exit would otherwise hide.
CRASH_MARKS = ("Traceback (most recent call last)", "Exception ignored")


def crash_in(output: str) -> str | None:
    """The :data:`CRASH_MARKS` entry that occurs first in ``output``, or ``None``."""
    found = [(output.index(mark), mark) for mark in CRASH_MARKS if mark in output]
    return min(found)[1] if found else None


def lfsreg(*args: str | os.PathLike[str], check: bool = True, spawn: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the lfsreg CLI: in this process (``clirun.run_cli``), or with ``spawn`` in a subprocess
    (``python -m lfsreg``), for a test about what a process does (its locks, its exit, what the
    interpreter prints at shutdown). In-process runs spare a Python start-up (~0.3 s of CPU
    under coverage) each; from a thread other than the main one they spawn anyway.

    Raises ``AssertionError`` when the output shows a crash (:data:`CRASH_MARKS`), even with
    ``check=False`` or exit 0, and, with ``check``, when the exit code is not 0.
    """
    if spawn:
        proc = subprocess.run(
            [sys.executable, "-m", "lfsreg", *(os.fspath(a) for a in args)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    else:
        from clirun import run_cli

        proc = run_cli(*(os.fspath(a) for a in args), traceback_ok=True)  # the crash check is below
    crash = crash_in(proc.stderr) or crash_in(proc.stdout)
    if crash or (check and proc.returncode != 0):
        why = f"printed {crash!r}" if crash else f"exited {proc.returncode}"
        raise AssertionError(f"lfsreg {' '.join(map(str, args))} {why} (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return proc


def tags_of(repo: str | os.PathLike[str]) -> dict[str, str]:
    """``{"name:tag": "sha256:..."}`` from ``lfsreg tags REPO --format json``.

    A read for checking what a test did: run in this process (``clirun.run_cli``; a new process
    only from another thread), which spares a Python start-up per check; crashes fail the test.
    """
    from clirun import run_cli

    proc = run_cli("tags", os.fspath(repo), "--format", "json")
    assert proc.returncode == 0, f"lfsreg tags {repo}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    rows = json.loads(proc.stdout)
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


def verify_oci_archive(path: str | os.PathLike[str]) -> list[PulledImage]:
    """:func:`verify_oci_layout` of an oci-archive (a tar of a layout): every member a plain file
    or directory inside the archive, every blob and diff_id checked; return its images."""
    with tarfile.open(path) as tar, tempfile.TemporaryDirectory(prefix="oci-archive-") as tmp:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            assert not name.startswith(("/", "..")), f"{path}: member {member.name!r} outside the archive"
            assert member.isfile() or member.isdir(), f"{path}: member {member.name!r} is not a plain file"
        tar.extractall(tmp, filter="data")
        return verify_oci_layout(tmp)


def skopeo_inspect(image: str, *args: str) -> dict:
    """``skopeo inspect [ARGS] IMAGE`` parsed (stock skopeo reads what lfsreg wrote); ``--raw``
    prints the manifest or index as stored."""
    from gitenv import require_tool

    with tempfile.TemporaryDirectory(prefix="skopeo-") as tmp:  # its oci-archive unpacking goes to TMPDIR
        env = {**os.environ, "TMPDIR": tmp, "HOME": tmp}
        argv = [require_tool("skopeo"), "--insecure-policy", "inspect", *args, image]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, f"skopeo inspect {image} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


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
