"""The OCI registry peers of tests/peers/distribution.py work as documented, checked with stock clients only.

* docker-registry anonymous, with htpasswd and behind our token server: skopeo copies an OCI
  layout in and back out byte-identically (manifest and blobs), crane copies it to another
  repository keeping its digest, oras pushes and pulls an artifact.
* wrong credentials are refused (skopeo exits non-zero; the token server answers 401 and logs
  the attempt without the password); the bearer flow really goes through the token server.
* crane, oras and the conformance-suite binary are where tools/install-test-deps.sh puts them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import fixture
from gitenv import require_tool
from peers import DistributionServer, conformance_suite, crane, docker_config, oras

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop

FIXTURE = {"none": "distribution_registry", "htpasswd": "distribution_registry_htpasswd", "token": "distribution_registry_token"}


@pytest.fixture(params=list(FIXTURE))
def registry(request: pytest.FixtureRequest) -> DistributionServer:
    return request.getfixturevalue(FIXTURE[request.param])


@pytest.fixture(params=["htpasswd", "token"])
def auth_registry(request: pytest.FixtureRequest) -> DistributionServer:
    return request.getfixturevalue(FIXTURE[request.param])


def run(
    argv: list[str], env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    if check:
        assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}: {proc.stderr[-1500:]}"
    return proc


def skopeo(*args: str) -> list[str]:
    return [require_tool("skopeo"), "--insecure-policy", *args]


def oci_blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def go_env(registry: DistributionServer, tmp_path: Path) -> dict[str, str]:
    """HOME/DOCKER_CONFIG for crane and oras: the registry's credentials in a docker config.json."""
    auths = {registry.host: (registry.user, registry.password)} if registry.auth != "none" else {}
    conf = docker_config(tmp_path / "docker-config", auths)
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_CONFIG": str(conf)}


def test_skopeo_round_trip(registry: DistributionServer, tmp_path: Path):
    src = fixture("app.oci")
    name = f"smoke/skopeo-{registry.auth}"
    dest_creds = ["--dest-creds", registry.creds] if registry.auth != "none" else []
    src_creds = ["--src-creds", registry.creds] if registry.auth != "none" else []
    run(skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", *dest_creds, f"oci:{src}", registry.ref(name, "1")))
    back = tmp_path / "back.oci"
    run(skopeo("copy", "--src-tls-verify=false", *src_creds, registry.ref(name, "1"), f"oci:{back}:1"))
    original = oci_blobs(src)
    returned = oci_blobs(back)
    assert returned.keys() <= original.keys()  # same manifest, config and layers: nothing rewritten
    assert all(returned[k] == original[k] for k in returned)
    manifest = json.loads(
        run(
            skopeo("inspect", "--raw", "--tls-verify=false", *(["--creds", registry.creds] if src_creds else []), registry.ref(name, "1"))
        ).stdout
    )
    assert {layer["digest"].split(":")[1] for layer in manifest["layers"]} <= returned.keys()
    if registry.auth == "token":
        asked = [r for r in registry.token_requests() if r["user"] == registry.user]
        assert any(f"repository:{name}:pull,push" in r["scopes"] for r in asked), asked


def test_wrong_password_refused(auth_registry: DistributionServer):
    registry = auth_registry
    name = f"smoke/denied-{registry.auth}"
    proc = run(
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{registry.user}:not-the-password",
            f"oci:{fixture('app.oci')}",
            registry.ref(name, "1"),
        ),
        check=False,
    )
    assert proc.returncode != 0
    assert "unauthorized" in proc.stderr.lower() or "invalid username/password" in proc.stderr.lower(), proc.stderr
    assert run(skopeo("inspect", "--tls-verify=false", "--creds", registry.creds, registry.ref(name, "1")), check=False).returncode != 0
    if registry.auth == "token":
        refused = [r for r in registry.token_requests() if r["status"] == 401]
        assert refused, registry.token_requests()
        assert "not-the-password" not in registry.token.log.read_text()  # type: ignore[union-attr]


def test_crane_copy_keeps_digest(registry: DistributionServer, tmp_path: Path):
    env = go_env(registry, tmp_path)
    name = f"smoke/crane-{registry.auth}"
    dest_creds = ["--dest-creds", registry.creds] if registry.auth != "none" else []
    run(
        skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", *dest_creds, f"oci:{fixture('app.oci')}", registry.ref(name, "src"))
    )
    src, dst = f"{registry.host}/{name}:src", f"{registry.host}/{name}-copy:1"
    run([crane(), "--insecure", "copy", src, dst], env=env)
    assert run([crane(), "--insecure", "digest", dst], env=env).stdout == run([crane(), "--insecure", "digest", src], env=env).stdout
    out = tmp_path / "crane.tar"
    run([crane(), "--insecure", "pull", "--format", "oci", dst, str(out)], env=env)
    assert out.stat().st_size > 0


def test_oras_artifact_round_trip(registry: DistributionServer, tmp_path: Path):
    env = go_env(registry, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_bytes(b"an artifact, not an image\n" * 100)
    ref = f"{registry.host}/smoke/oras-{registry.auth}:v1"
    run([oras(), "push", "--plain-http", "--artifact-type", "application/vnd.lfsreg.test", ref, "notes.txt:text/plain"], env=env, cwd=work)
    out = tmp_path / "out"
    out.mkdir()
    run([oras(), "pull", "--plain-http", "-o", str(out), ref], env=env)
    assert (out / "notes.txt").read_bytes() == (work / "notes.txt").read_bytes()


def test_conformance_binary_is_installed():
    proc = run([conformance_suite(), "-test.list", ".*"])
    assert proc.stdout.strip(), "the conformance test binary lists no tests"
