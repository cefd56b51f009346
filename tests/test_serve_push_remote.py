"""Pushing through ``lfsreg serve`` into a registry on a git host (nginx + git http-backend + giftless).

Blobs reach giftless through the LFS batch API (the path ``lfsreg push`` takes), each manifest
is one commit pushed to the host; two ``serve`` processes on the same registry take pushes of
different tags at once and both land (they meet only at the branch's compare-and-swap); what
one server took, a fresh lfsreg with an empty cache pulls from the host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bcrypt
import pytest
from conftest import concurrently
from gitenv import require_tool, use_cli_env
from servehelp import free_env, serving
from serveput_images import OCI_MANIFEST, image, sha
from test_serve_push_clients import multi_platform_layout
from test_serve_write_api import Client  # authenticates as pusher:secret

import lfsreg

pytestmark = pytest.mark.interop


@pytest.fixture
def remote(git_http_server, git_http_repo, tmp_path, monkeypatch):
    use_cli_env(monkeypatch, tmp_path, git_http_server)
    with lfsreg.Registry(git_http_repo.url) as reg:
        reg.init()
    return git_http_repo


def _htpasswd(tmp_path: Path) -> str:
    path = tmp_path / "htpasswd"
    path.write_text("pusher:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    return str(path)


def test_skopeo_pushes_through_serve_to_the_host_and_a_fresh_lfsreg_pulls_it(remote, tmp_path, monkeypatch):
    skopeo = require_tool("skopeo")
    index, images = multi_platform_layout(tmp_path / "layout")
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "serve-cache"))
    with serving(remote.url, htpasswd=_htpasswd(tmp_path)) as srv:
        host = srv.url.removeprefix("http://")
        proc = subprocess.run(
            [skopeo, "copy", "--all", "--dest-tls-verify=false", "--dest-creds", "pusher:secret",
             f"oci:{tmp_path / 'layout'}:multi", f"docker://{host}/app/multi:v1"],
            env=free_env(tmp_path), capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "fresh-cache"))  # every layer comes from giftless
    with lfsreg.Registry(remote.url) as reg:
        reg.pull(["app/multi:v1"], f"oci:{tmp_path / 'pulled'}:multi")
    blobs = tmp_path / "pulled" / "blobs" / "sha256"
    for im in images:
        for data in (im.manifest, im.config, im.layer):
            assert (blobs / sha(data)[7:]).read_bytes() == data
    assert (blobs / sha(index)[7:]).read_bytes() == index


def test_two_servers_on_one_host_registry_take_pushes_of_different_tags_at_once(remote, tmp_path, monkeypatch):
    htpasswd = _htpasswd(tmp_path)
    ims = [image(f"server {i}") for i in range(2)]
    with serving(remote.url, htpasswd=htpasswd, refresh=0.2) as one, serving(remote.url, htpasswd=htpasswd, refresh=0.2) as two:
        clients = [Client(one.url), Client(two.url)]

        def push(i: int) -> None:
            for data in ims[i].blobs.values():
                clients[i].push_blob("app/web", data)
            status, _, body = clients[i]("PUT", f"/v2/app/web/manifests/t{i}", ims[i].manifest, Content_Type=OCI_MANIFEST)
            assert status == 201, body

        assert not concurrently(push, 2)
        # each server serves the other's push (within --refresh)
        for c in clients:
            for i in range(2):
                status, _, body = c("GET", f"/v2/app/web/manifests/t{i}", Accept=OCI_MANIFEST)
                assert (status, body) == (200, ims[i].manifest)
    with lfsreg.Registry(remote.url) as reg:
        assert [t.tag for t in reg.tags("app/web")] == ["t0", "t1"]
