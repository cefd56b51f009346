"""``docker://`` against ``lfsreg serve`` (issue 11): lfsreg's registry client reads what lfsreg's server serves.

* ``lfsreg push B docker://SERVE/NAME:TAG`` from a read-only ``serve`` of registry A gives B the same
  image (same digest, an index whole, one platform with ``--platform``), anonymous and with
  ``--htpasswd`` (``--src-creds``; a wrong password is one line and exit 1).
* A second mirror push of the same image moves no layer again (B already holds them).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env, require_tool
from imageverify import FIXTURES
from servehelp import serving

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _root(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("serve-source")
    repo = tmp / "a.git"
    env = cli_env(tmp)
    _ok(run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env))
    _ok(run_cli("push", repo, f"oci:{FIXTURES / 'multi.oci'}:1.0", "--tag", "acme/multi:1.0", env=env))
    return repo


def _push(env: dict[str, str], dest: Path, ref: str, *args: str) -> dict:
    return json.loads(_ok(run_cli("push", dest, ref, *args, "--format", "json", env=env)).stdout)


def test_mirror_out_of_serve(source: Path, tmp_path: Path):
    env = cli_env(tmp_path)
    mirror = tmp_path / "b.git"
    with serving(source) as server:
        host = server.url.split("//", 1)[1]
        app = _push(env, mirror, f"docker://{host}/acme/app:1.0")
        multi = _push(env, mirror, f"docker://{host}/acme/multi:1.0")
        again = _push(env, mirror, f"docker://{host}/acme/app:1.0", "--tag", "acme/app:copy")
        raw = subprocess.run(
            [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{host}/acme/multi:1.0"],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        children = json.loads(raw)["manifests"]
        wanted = children[0]["platform"]
        one = _push(
            env, mirror, f"docker://{host}/acme/multi:1.0", "--platform", f"{wanted['os']}/{wanted['architecture']}", "--tag", "acme/one:1"
        )
    assert app["images"][0]["digest"] == _root(FIXTURES / "app.oci")
    assert multi["images"][0]["digest"] == _root(FIXTURES / "multi.oci")
    assert one["images"][0]["digest"] == children[0]["digest"]
    assert again["layers_uploaded"] == 0 and again["bytes_uploaded"] == 0
    back = tmp_path / "back.oci"
    _ok(run_cli("pull", mirror, "acme/multi:1.0", "-o", f"oci:{back}", env=env))
    assert _root(back) == _root(FIXTURES / "multi.oci")


def test_serve_with_htpasswd(source: Path, tmp_path: Path):
    htpasswd = tmp_path / "htpasswd"
    subprocess.run([require_tool("htpasswd"), "-Bbc", str(htpasswd), "mirror", "m1rr0r-pw"], check=True, capture_output=True, timeout=30)
    env = cli_env(tmp_path)
    with serving(source, htpasswd=str(htpasswd), read_only=True) as server:
        host = server.url.split("//", 1)[1]
        ok = _push(env, tmp_path / "c.git", f"docker://{host}/acme/app:1.0", "--src-creds", "mirror:m1rr0r-pw")
        bad = run_cli("push", tmp_path / "d.git", f"docker://{host}/acme/app:1.0", "--src-creds", "mirror:wrong-pw-9", env=env)
    assert ok["images"][0]["digest"] == _root(FIXTURES / "app.oci")
    assert bad.returncode == 1 and "wrong-pw-9" not in bad.stdout + bad.stderr
    assert "refused the credentials" in bad.stderr, bad.stderr
    assert not (tmp_path / "d.git").exists()


def test_pull_into_writable_serve_then_skopeo_reads(source: Path, tmp_path: Path):
    """``lfsreg pull A IMAGE -o docker://SERVE/...`` writes through serve's push API into registry B; skopeo reads it back."""
    htpasswd = tmp_path / "htpasswd"
    subprocess.run([require_tool("htpasswd"), "-Bbc", str(htpasswd), "writer", "wr1ter-pw"], check=True, capture_output=True, timeout=30)
    env = cli_env(tmp_path)
    target = tmp_path / "b.git"
    _ok(run_cli("init", target, env=env))
    with serving(target, htpasswd=str(htpasswd)) as server:
        host = server.url.split("//", 1)[1]
        for image, dest in (("acme/app:1.0", "mirror/app:1"), ("acme/multi:1.0", "mirror/multi:1")):
            _ok(run_cli("pull", source, image, "-o", f"docker://{host}/{dest}", "--dest-creds", "writer:wr1ter-pw", env=env))
        back = tmp_path / "back.oci"
        subprocess.run(
            [
                require_tool("skopeo"),
                "--insecure-policy",
                "copy",
                "--all",
                "--src-tls-verify=false",
                "--src-creds",
                "writer:wr1ter-pw",
                f"docker://{host}/mirror/multi:1",
                f"oci:{back}:1",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert _root(back) == _root(FIXTURES / "multi.oci")
    tags = json.loads(_ok(run_cli("tags", target, "--format", "json", env=env)).stdout)
    assert {(t["name"], t["tag"]) for t in tags} == {("mirror/app", "1"), ("mirror/multi", "1")}
    assert {t["digest"] for t in tags} == {_root(FIXTURES / "app.oci"), _root(FIXTURES / "multi.oci")}
