"""Real registry clients push into ``lfsreg serve``; other clients, ``lfsreg pull`` and stock git + git-lfs read it back.

skopeo (Debian) pushes a multi-platform index with a gzip and a zstd image, crane pushes a
``docker save`` tarball and copies between repositories (a cross-repository mount), oras
pushes an artifact and attaches one to it with a ``subject``; then another client pulls each.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from conftest import formats, main_ref
from gitenv import missing_prerequisite
from peers.goclients import go_tool
from serveput_images import OCI_INDEX, dumps, image, index_of, sha

from lfsreg.api import Registry
from lfsreg.registry import layout
from lfsreg.serve import RegistryServer, ServeOptions

USER, PASSWORD = "pusher", "secret"
TIMEOUT = 120


def tool(name: str) -> str:
    if name in ("crane", "oras"):
        return go_tool(name)
    found = shutil.which(name)
    if found is None:
        missing_prerequisite(f"{name} not found on PATH", "tools/install-test-deps.sh installs it")
    return found


def run(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


class Served:
    def __init__(self, tmp_path: Path, server: RegistryServer, registry: Registry) -> None:
        self.server = server
        self.registry = registry
        self.host = server.url.removeprefix("http://")
        config = tmp_path / "docker-config"
        config.mkdir()
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        self.env = {**os.environ, "DOCKER_CONFIG": str(config), "HOME": str(tmp_path)}

    def skopeo(self, *args: str) -> str:
        return run(tool("skopeo"), *args, env=self.env)

    def crane(self, *args: str) -> str:
        return run(tool("crane"), "--insecure", *args, env=self.env)

    def oras(self, *args: str) -> str:
        return run(tool("oras"), *args, "--plain-http", "-u", USER, "-p", PASSWORD, env=self.env)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode() + "\n")
    reg = Registry(str(tmp_path / "reg.git"))
    reg.init()
    server = RegistryServer(reg, ServeOptions(listen="127.0.0.1:0", htpasswd=str(htpasswd)))
    server.start()
    try:
        yield Served(tmp_path, server, reg)
    finally:
        server.close()
        reg.close()


def multi_platform_layout(path: Path) -> tuple[bytes, list]:
    """An OCI layout tagged ``multi``: an index of a gzip image (amd64) and a zstd image (arm64)."""
    a, b = image("gzip layer", compression="gzip"), image("zstd layer", compression="zstd", arch="arm64")
    index = index_of(a, b)
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for digest, data in {**a.blobs, **b.blobs, a.digest: a.manifest, b.digest: b.manifest, sha(index): index}.items():
        (blobs / digest[7:]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ref = {"mediaType": OCI_INDEX, "digest": sha(index), "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "multi"}}
    (path / "index.json").write_bytes(dumps({"schemaVersion": 2, "manifests": [ref]}))
    return index, [a, b]


def test_skopeo_pushes_an_index_crane_and_lfsreg_and_git_read_it(served: Served, tmp_path: Path) -> None:
    index, images = multi_platform_layout(tmp_path / "layout")
    served.skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:multi", f"docker://{served.host}/app/multi:v1")
    # crane (another client) reads exactly what was pushed
    assert served.crane("manifest", f"{served.host}/app/multi:v1").encode().strip() == index
    for im, arch in zip(images, ("amd64", "arm64"), strict=True):
        assert served.crane("config", "--platform", f"linux/{arch}", f"{served.host}/app/multi:v1").encode().strip() == im.config
    out = tmp_path / "crane-out"
    served.crane("pull", "--format", "oci", "--platform", "all", f"{served.host}/app/multi:v1", str(out))
    for im in images:
        assert (out / "blobs" / "sha256" / sha(im.layer)[7:]).read_bytes() == im.layer
    # lfsreg reads it from the git side
    with Registry(served.registry.location) as reg:
        reg.pull(["app/multi:v1"], f"oci:{tmp_path / 'pulled'}:multi")
    pulled = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert pulled["manifests"][0]["digest"] == sha(index)
    # and so do stock git + git-lfs
    clone = tmp_path / "clone"
    run("git", "clone", "-q", served.registry.location, str(clone))
    run("git", "-C", str(clone), "lfs", "pull")
    for im in images:
        digest = sha(im.layer)[7:]
        assert (clone / layout.NEW.hex_path("layers", digest)).read_bytes() == im.layer
    assert (clone / layout.NEW.tag_path("app/multi", "v1")).read_text() == f"{sha(index)}\n"
    assert run("git", "-C", str(clone), "status", "--porcelain") == ""


def test_crane_pushes_a_tarball_and_copies_across_repositories(served: Served, tmp_path: Path) -> None:
    served.crane("push", str(formats("ggcr-test_image_1.tar")), f"{served.host}/crane/one:v1")
    digest = served.crane("digest", f"{served.host}/crane/one:v1").strip()
    before = main_ref(Path(served.registry.location))
    served.crane("copy", f"{served.host}/crane/one:v1", f"{served.host}/crane/two:copied")  # blobs mounted, not uploaded
    assert main_ref(Path(served.registry.location)) != before
    assert served.crane("digest", f"{served.host}/crane/two:copied").strip() == digest
    out = tmp_path / "skopeo-out"
    served.skopeo("copy", "--src-tls-verify=false", f"docker://{served.host}/crane/two:copied", f"docker-archive:{out}:x/y:z")
    assert out.stat().st_size > 0
    assert served.crane("ls", f"{served.host}/crane/two").split() == ["copied"]


def test_oras_artifact_with_subject_found_through_referrers(served: Served, tmp_path: Path) -> None:
    work = tmp_path / "files"
    work.mkdir()
    (work / "chart.txt").write_text("an artifact\n")
    (work / "sig.txt").write_text("a signature\n")
    env_cwd = str(work)
    subprocess.run(
        [tool("oras"), "push", "--plain-http", "-u", USER, "-p", PASSWORD, "--artifact-type", "application/vnd.example.chart",
         f"{served.host}/art/chart:1.0", "chart.txt"],
        cwd=env_cwd, env=served.env, check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    subprocess.run(
        [tool("oras"), "attach", "--plain-http", "-u", USER, "-p", PASSWORD, "--artifact-type", "application/vnd.example.sig",
         f"{served.host}/art/chart:1.0", "sig.txt"],
        cwd=env_cwd, env=served.env, check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    found = json.loads(served.oras("discover", "--format", "json", f"{served.host}/art/chart:1.0"))
    referrers = found.get("manifests") or found.get("referrers") or []
    assert [r["artifactType"] for r in referrers] == ["application/vnd.example.sig"]
    attached = json.loads(served.crane("manifest", f"{served.host}/art/chart@{referrers[0]['digest']}"))  # another client reads it
    assert attached["subject"]["digest"] == served.crane("digest", f"{served.host}/art/chart:1.0").strip()
    out = tmp_path / "pulled"
    served.oras("pull", "-o", str(out), f"{served.host}/art/chart@{referrers[0]['digest']}")
    assert (out / "sig.txt").read_text() == "a signature\n"
    served.oras("pull", "-o", str(out), f"{served.host}/art/chart:1.0")
    assert (out / "chart.txt").read_text() == "an artifact\n"
