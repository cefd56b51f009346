"""Real container clients pull from ``lfsreg serve``: skopeo, podman (pull, then run), crane, oras.

Each client reads through the distribution API what ``lfsreg push`` stored, and what it gets
is compared with the source: same manifest digests, same blobs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import peers
import pytest
from peers.engine import podman_storage

import lfsreg
from tests.conftest import FIXTURES
from tests.gitenv import require_tool
from tests.servehelp import busybox_oci, free_env, serving


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients")
    path = tmp / "reg.git"
    reg = lfsreg.Registry(str(path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.push([f"oci:{FIXTURES / 'multi.oci'}:1.0"], tags=["acme/multi:1.0"])
    reg.push([f"oci:{FIXTURES / 'multi-docker.oci'}:1.0"], tags=["acme/dmulti:1.0"])
    reg.push([f"oci:{FIXTURES / 'app-zstd.oci'}:1.0"], tags=["acme/zapp:1.0"])
    reg.push([f"oci:{busybox_oci(tmp / 'busybox.oci')}:1"], tags=["test/busybox:1"])
    reg.close()
    return path


@pytest.fixture(scope="module")
def server(repo):
    with serving(repo) as srv:
        yield srv


def host(server) -> str:
    return server.url.removeprefix("http://")


def index_digest(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


@pytest.mark.parametrize(
    ("name", "source", "all_"),
    [("acme/app:1.0", "app.oci", False), ("acme/multi:1.0", "multi.oci", True), ("acme/zapp:1.0", "app-zstd.oci", False)],
)
def test_skopeo_copies_images_out_unchanged(server, tmp_path, name, source, all_):
    skopeo = require_tool("skopeo")
    out = tmp_path / "out"
    argv = [skopeo, "copy", "--src-tls-verify=false", *(["--all"] if all_ else []), f"docker://{host(server)}/{name}", f"oci:{out}:x"]
    run(argv, free_env(tmp_path))
    assert index_digest(out) == index_digest(FIXTURES / source)
    for blob in (out / "blobs" / "sha256").iterdir():  # every blob skopeo fetched is byte-identical
        assert blob.read_bytes() == (FIXTURES / source / "blobs" / "sha256" / blob.name).read_bytes()


def test_skopeo_with_a_docker_list_and_inspect(server, tmp_path):
    skopeo = require_tool("skopeo")
    out = tmp_path / "out"  # dir: keeps the list as it came (oci: would convert it to an OCI index)
    run([skopeo, "copy", "--src-tls-verify=false", "--all", f"docker://{host(server)}/acme/dmulti:1.0", f"dir:{out}"], free_env(tmp_path))
    digest = "sha256:" + hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert digest == index_digest(FIXTURES / "multi-docker.oci")
    raw = run([skopeo, "inspect", "--tls-verify=false", "--raw", f"docker://{host(server)}/acme/dmulti:1.0"], free_env(tmp_path)).stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    tags = json.loads(run([skopeo, "list-tags", "--tls-verify=false", f"docker://{host(server)}/acme/app"], free_env(tmp_path)).stdout)
    assert tags["Tags"] == ["1.0"]


def test_podman_pulls_and_runs_busybox(server, tmp_path):
    podman = require_tool("podman")
    runc = require_tool("runc")
    storage = podman_storage(tmp_path / "root", f"/tmp/lfsreg-sv-{tmp_path.name[-12:]}")
    env = free_env(tmp_path)
    image = f"{host(server)}/test/busybox:1"
    try:
        run([podman, *storage, "pull", "--tls-verify=false", image], env)
        argv = [podman, *storage, "--runtime", runc, "--cgroup-manager", "cgroupfs", "run", "--rm", "--network", "none"]
        argv += ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", image, "/bin/sh", "-c", "echo hello from $(uname -s)"]
        assert run(argv, env).stdout.strip() == "hello from Linux"
    finally:
        subprocess.run([podman, *storage, "rmi", "-af"], env=env, capture_output=True, timeout=120, check=False)
        subprocess.run([podman, *storage, "system", "reset", "-f"], env=env, capture_output=True, timeout=120, check=False)


def test_crane_reads_manifests_tags_catalog_and_pulls(server, tmp_path):
    crane = peers.crane()
    env = free_env(tmp_path)
    base = host(server)
    manifest = run([crane, "manifest", "--insecure", f"{base}/acme/app:1.0"], env).stdout
    digest = index_digest(FIXTURES / "app.oci")
    assert manifest.encode() == (FIXTURES / "app.oci" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    assert run([crane, "digest", "--insecure", f"{base}/acme/multi:1.0"], env).stdout.strip() == index_digest(FIXTURES / "multi.oci")
    assert run([crane, "ls", "--insecure", f"{base}/acme/app"], env).stdout.split() == ["1.0"]
    assert "acme/multi" in run([crane, "catalog", "--insecure", base], env).stdout.split()
    out = tmp_path / "pulled"
    run([crane, "pull", "--insecure", "--format", "oci", f"{base}/acme/app:1.0", str(out)], env)
    assert index_digest(out) == index_digest(FIXTURES / "app.oci")


def test_oras_reads_manifests_tags_and_referrers(server, tmp_path):
    oras = peers.oras()
    env = free_env(tmp_path)
    base = host(server)
    fetched = run([oras, "manifest", "fetch", "--plain-http", "--descriptor", f"{base}/acme/app:1.0"], env).stdout
    assert json.loads(fetched)["digest"] == index_digest(FIXTURES / "app.oci")
    assert run([oras, "repo", "tags", "--plain-http", f"{base}/acme/app"], env).stdout.split() == ["1.0"]
    discovered = run([oras, "discover", "--plain-http", "--format", "json", f"{base}/acme/app:1.0"], env).stdout
    assert json.loads(discovered).get("referrers", json.loads(discovered).get("manifests")) in ([], None)
