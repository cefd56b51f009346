"""``lfsreg serve --require-signatures`` (the trust policy on every manifest GET) and ``lfsreg push --sign-key``."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests
from conftest import FIXTURES, assert_error, assert_ok, commit_count, run_cli, snapshot
from signing_help import digest_of, signed_registry

from lfsreg.api import Registry, RemoteOptions
from lfsreg.serve import RegistryServer, ServeOptions
from tests.gitenv import require_tool
from tests.servehelp import free_env

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A registry whose policy says acme/* needs the owner's key: acme/app and the acme/multi index signed, acme/tool not."""
    base = tmp_path_factory.mktemp("gate")
    repo = signed_registry(
        base / "reg.git",
        ("app.oci:1.0", "acme/app:1.0"),
        ("tool.oci", "acme/tool:2.0"),
        ("multi.oci:1.0", "acme/multi:1.0"),
        ("tool.oci", "other/x:1"),
    )
    env = {"LFSREG_CACHE": str(base / "cache")}
    assert_ok(run_cli("keygen", "--sign", "--out", base / "owner"))
    assert_ok(run_cli("sign", repo, "acme/app:1.0", "acme/multi:1.0", "--key", base / "owner", env=env))
    assert_ok(run_cli("trust", repo, "add", "acme/*", base / "owner.pub", env=env))
    servers = {}
    for gated in (True, False):
        reg = Registry(str(repo), options=RemoteOptions(cache_dir=str(base / "cache")))
        srv = RegistryServer(reg, ServeOptions(listen="127.0.0.1:0", require_signatures=gated))
        srv.start()
        servers[gated] = (srv, reg)
    yield base, repo, servers[True][0].url, servers[False][0].url
    for srv, reg in servers.values():
        srv.close()
        reg.close()


def _get(url, name, reference):
    return requests.get(f"{url}/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=30)


def test_gate_serves_signed_and_denies_unsigned(setup):
    _, repo, gated, open_ = setup
    assert _get(gated, "acme/app", "1.0").status_code == 200
    tool = digest_of(repo, "acme/tool:2.0")
    for reference in ("2.0", str(tool)):
        answer = _get(gated, "acme/tool", reference)
        assert answer.status_code == 403
        [error] = answer.json()["errors"]
        assert error["code"] == "DENIED" and "acme/tool@sha256:" in error["message"] and "has none" in error["message"]
    assert _get(open_, "acme/tool", "2.0").status_code == 200  # without --require-signatures: served
    assert _get(gated, "other/x", "1").status_code == 200  # no rule names it
    app = digest_of(repo, "acme/app:1.0")
    assert _get(gated, "acme/app", f"sha256-{app.hex}.sig").status_code == 200  # cosign reads signatures unsigned


def test_gate_serves_platform_manifests_of_a_signed_index(setup, tmp_path):
    gated = setup[2]
    index = _get(gated, "acme/multi", "1.0")
    assert index.status_code == 200
    for child in index.json()["manifests"]:
        assert _get(gated, "acme/multi", child["digest"]).status_code == 200
    skopeo = require_tool("skopeo")
    host = gated.removeprefix("http://")
    argv = [skopeo, "copy", "--all", "--src-tls-verify=false", f"docker://{host}/acme/multi:1.0", f"oci:{tmp_path / 'multi'}:x"]
    proc = subprocess.run(argv, env=free_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    argv = [skopeo, "copy", "--src-tls-verify=false", f"docker://{host}/acme/tool:2.0", f"oci:{tmp_path / 'tool'}:x"]
    proc = subprocess.run(argv, env=free_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "denied" in proc.stderr.lower()


def test_serve_cli_has_the_flag():
    proc = run_cli("serve", "--help")
    assert_ok(proc)
    assert "--require-signatures" in proc.stdout


def test_push_sign_key_signs_in_the_push_commit(setup, tmp_path):
    base, _, _, _ = setup
    repo = signed_registry(tmp_path / "reg.git", ("tool.oci", "acme/base:1"))
    env = {"LFSREG_CACHE": str(tmp_path / "cache")}
    assert_ok(run_cli("trust", repo, "add", "acme/*", base / "owner.pub", env=env))
    state, before = snapshot(repo), commit_count(repo)
    source = f"oci:{base.parent / 'x'}"
    assert_error(run_cli("push", repo, source, "-t", "acme/app:1.0", "--sign-key", base / "owner.pub", env=env), 2, "not a PEM private key")
    assert snapshot(repo) == state
    proc = run_cli(
        "push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "-t", "acme/app:1.0", "--sign-key", base / "owner", "--format", "json", env=env
    )
    assert_ok(proc)
    assert commit_count(repo) == before + 1
    pushed = json.loads(proc.stdout)["images"][0]["digest"]
    tags = json.loads(run_cli("tags", repo, "acme/app", "--format", "json").stdout)
    assert {t["tag"] for t in tags} == {"1.0", f"sha256-{pushed[7:]}.sig"}
    assert_ok(run_cli("pull", repo, "acme/app:1.0", "-o", f"oci:{tmp_path / 'out'}", env=env))  # the policy is satisfied
    assert_error(run_cli("pull", repo, "acme/base:1", "-o", f"oci:{tmp_path / 'b'}", env=env), 1, "acme/base@sha256:")
