"""``lfsreg push REPO docker://... --platform A --platform B``: a platform subset of a registry's index (issue 11).

One platform is that platform's image manifest (its digest the one the source index lists);
several are a new index of the same media type listing just their descriptors (as the source
lists them, in its order; a new digest); all of them are the source index unchanged. A
platform the index lacks: exit 1, one line naming what it has, nothing created.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from peers import DistributionServer
from serveput_images import image, index_of, sha

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _layout(out: Path, blobs: dict[str, bytes], root: bytes, media_type: str) -> Path:
    for digest, data in blobs.items():
        path = out / "blobs" / "sha256" / digest[7:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    desc = {"mediaType": media_type, "digest": sha(root), "size": len(root), "annotations": {"org.opencontainers.image.ref.name": "1"}}
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return out


@pytest.fixture
def three(distribution_registry: DistributionServer, tmp_path: Path) -> tuple[str, bytes, dict[str, str]]:
    """An index of three platforms in docker-registry (put there by lfsreg pull); its reference, bytes, env."""
    images = [image(f"platform {i}", arch=arch) for i, arch in enumerate(("amd64", "arm64", "s390x"))]
    index = index_of(*images)
    blobs = {sha(index): index, **{im.digest: im.manifest for im in images}, **{d: b for im in images for d, b in im.blobs.items()}}
    layout = _layout(tmp_path / "three.oci", blobs, index, "application/vnd.oci.image.index.v1+json")
    env = cli_env(tmp_path)
    _ok(run_cli("push", tmp_path / "src.git", f"oci:{layout}:1", "--tag", "acme/three:1", env=env))
    ref = distribution_registry.ref("lfsreg/three", "1")
    _ok(run_cli("pull", tmp_path / "src.git", "acme/three:1", "-o", ref, env=env))
    return ref, index, env


def _push(env: dict[str, str], repo: Path, ref: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli("push", repo, ref, *args, "--format", "json", env=env)


def _digest(proc: subprocess.CompletedProcess) -> str:
    return json.loads(_ok(proc).stdout)["images"][0]["digest"]


def test_platform_subsets(three, tmp_path: Path) -> None:
    ref, index, env = three
    source = json.loads(index)["manifests"]
    mirror = tmp_path / "mirror.git"
    one = _digest(_push(env, mirror, ref, "--platform", "linux/arm64", "--tag", "m/one:1"))
    assert one == source[1]["digest"]
    two = _digest(_push(env, mirror, ref, "--platform", "linux/s390x", "--platform", "linux/amd64", "--tag", "m/two:1"))
    out = tmp_path / "two.oci"
    _ok(run_cli("pull", mirror, "m/two:1", "-o", f"oci:{out}", env=env))
    stored = (out / "blobs" / "sha256" / two[7:]).read_bytes()
    assert sha(stored) == two != sha(index)
    doc = json.loads(stored)
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert doc["manifests"] == [source[0], source[2]]  # the source's descriptors, in its order
    assert {p.name for p in (out / "blobs" / "sha256").iterdir()} >= {source[0]["digest"][7:], source[2]["digest"][7:]}
    assert source[1]["digest"][7:] not in {p.name for p in (out / "blobs" / "sha256").iterdir()}
    every = _digest(_push(env, mirror, ref, "--platform", "linux/amd64,linux/arm64,linux/s390x", "--tag", "m/all:1"))
    assert every == sha(index)


def test_a_missing_platform_is_one_line_nothing_created(three, tmp_path: Path) -> None:
    ref, _, env = three
    mirror = tmp_path / "none.git"
    proc = _push(env, mirror, ref, "--platform", "linux/amd64", "--platform", "windows/amd64")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "windows/amd64" in lines[0] and "linux/s390x" in lines[0] and len(lines) <= 2, proc.stderr
    assert not mirror.exists()
