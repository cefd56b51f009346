"""``lfsreg serve`` over a registry on a git host (nginx + git http-backend + giftless, and the
test sshd with scutiger's git-lfs-transfer): layers fetched into an empty cache on first request,
``--redirect`` to giftless's presigned URLs that skopeo follows, and freshness at the price of one
ref query per ``--refresh`` when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
import requests
from peers.nginx import log_lines as settled_log_lines

import lfsreg
from tests.clirun import run_cli
from tests.conftest import FIXTURES, assert_ok
from tests.gitenv import cli_env, require_tool, use_cli_env
from tests.servehelp import free_env, serving

pytestmark = pytest.mark.interop


@pytest.fixture
def remote(git_http_server, git_http_repo, tmp_path, monkeypatch):
    use_cli_env(monkeypatch, tmp_path, git_http_server)
    with lfsreg.Registry(git_http_repo.url) as reg:
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "serve-cache"))  # the server starts with an empty cache
    return git_http_repo


def log_lines(server) -> list[str]:
    return settled_log_lines(server.access_log)  # settled: nginx logs a request as it finalises it


@pytest.mark.parametrize("redirect", [False, True])
def test_skopeo_copies_out_of_a_remote_registry(git_http_server, remote, tmp_path, redirect):
    skopeo = require_tool("skopeo")
    with serving(remote.url, redirect=redirect) as srv:
        host = srv.url.removeprefix("http://")
        manifest = requests.get(f"{srv.url}/v2/acme/app/manifests/1.0", timeout=30).json()
        layer = manifest["layers"][0]["digest"]
        first = requests.get(f"{srv.url}/v2/acme/app/blobs/{layer}", allow_redirects=False, timeout=30)
        if redirect:
            assert first.status_code == 307
            location = first.headers["Location"]
            assert location.startswith(git_http_server.url) and git_http_server.password not in location
        else:
            assert first.status_code == 200 and hashlib.sha256(first.content).hexdigest() == layer.split(":")[1]
        before = len(log_lines(git_http_server))
        out = tmp_path / "out"
        proc = subprocess.run(
            [skopeo, "copy", "--src-tls-verify=false", f"docker://{host}/acme/app:1.0", f"oci:{out}:x"],
            env=free_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    digest = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert digest == json.loads((FIXTURES / "app.oci" / "index.json").read_text())["manifests"][0]["digest"]
    for blob in (out / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (FIXTURES / "app.oci" / "blobs" / "sha256" / blob.name).read_bytes()
    storage_gets = [line for line in log_lines(git_http_server)[before:] if '"GET ' in line and "/objects/storage/" in line]
    if redirect:  # skopeo fetched the layers from the LFS storage itself
        assert len(storage_gets) == len(manifest["layers"]), storage_gets


def test_a_push_to_the_host_is_served_within_refresh_with_one_ref_query_when_quiet(git_http_server, remote, tmp_path, monkeypatch):
    with serving(remote.url, refresh=0.3) as srv:
        url = f"{srv.url}/v2/acme/app/tags/list"
        assert requests.get(url, timeout=30).json()["tags"] == ["1.0"]
        monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "pusher-cache"))
        with lfsreg.Registry(remote.url) as other:
            other.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:2.0"])
        pushed = time.monotonic()
        while requests.get(url, timeout=30).json()["tags"] != ["1.0", "2.0"]:
            assert time.monotonic() - pushed < 5, "the pushed tag was not served within --refresh"
            time.sleep(0.05)
        # quiet: nothing changes for ~6 refresh periods of steady requests
        before = len(log_lines(git_http_server))
        start = time.monotonic()
        while time.monotonic() < start + 2.0:
            assert requests.get(url, timeout=30).status_code == 200
            time.sleep(0.02)
        quiet_s = time.monotonic() - start
        quiet = [line for line in log_lines(git_http_server)[before:] if remote.name in line]
    # one ref query = protocol v0's GET info/refs (the refs; no ls-refs POST); a fetch would be a POST
    ref_queries = [line for line in quiet if "GET " in line and "info/refs?service=git-upload-pack" in line]
    assert 1 <= len(ref_queries) <= quiet_s / 0.3 + 2, quiet  # at most one per --refresh period, however many requests
    assert len(quiet) == len(ref_queries), f"only ref queries when nothing changed: {quiet}"


def test_serve_over_ssh(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    assert_ok(run_cli("push", url, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env))
    serve_env = cli_env(tmp_path / "server", sshd=sshd_server, key=key)  # an empty cache: layers come over SSH
    argv = [sys.executable, "-m", "lfsreg", "serve", url, "--listen", "127.0.0.1:0", "--format", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=serve_env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.communicate(timeout=30)[1]
        host = json.loads(line)["url"].removeprefix("http://")
        out = tmp_path / "out"
        copy = subprocess.run(
            [require_tool("skopeo"), "copy", "--src-tls-verify=false", f"docker://{host}/acme/app:1.0", f"oci:{out}:x"],
            env=free_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert copy.returncode == 0, copy.stderr
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for blob in (out / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (FIXTURES / "app.oci" / "blobs" / "sha256" / blob.name).read_bytes()
