"""A push says what it will add before it uploads; push and pull say what they moved (lfsreg/ops/push.py, limits.py, traffic.py).

Against real servers: nginx + git http-backend + giftless over HTTP (giftless's storage
directory is measured: the estimate must equal what it then stores), a local registry, and
sshd in front of the same repositories.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli, snapshot

import lfsreg
from lfsreg.progress import ESTIMATE

APP = "docker-archive:" + str(fixture("app.docker.tar"))
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))  # shares app's base layer
MULTI = f"oci:{fixture('multi.oci')}:1.0"


def _stored(directory: Path | None) -> tuple[int, int]:
    """(files, bytes) under a storage directory."""
    assert directory is not None
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


@pytest.fixture
def http_env(git_http_server, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_", "GIT_")) or name == "NETRC":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    return dict(os.environ)


pytestmark = pytest.mark.interop


def test_the_estimate_is_what_giftless_then_stores(git_http_repo, http_env):
    events = []
    reg = lfsreg.Registry(git_http_repo.url)
    for source, tags in ((APP, []), (TOOL, []), (MULTI, ["acme/multi:1.0"]), (APP, ["acme/app:again"])):
        before = _stored(git_http_repo.lfs_storage)
        result = reg.push([source], tags=tags, progress=events.append)
        after = _stored(git_http_repo.lfs_storage)
        est = result.estimate
        assert est is not None
        assert (est.objects, est.bytes) == (after[0] - before[0], after[1] - before[1])
        assert result.bytes_to_host == est.bytes
        assert est.billed_after == lfsreg.Registry(git_http_repo.url).du().history_bytes
    assert est.objects == 0 and est.billed_after == est.billed_before  # the last push re-tagged a stored image
    # the estimate event comes once per push, before any byte is uploaded
    kinds = [e.action for e in events if e.action in (ESTIMATE, "upload")]
    assert kinds.count(ESTIMATE) == 4
    first_upload = kinds.index("upload")
    assert kinds[first_upload - 1] == ESTIMATE and ESTIMATE not in kinds[first_upload : kinds.index(ESTIMATE, first_upload)]


def test_dry_run_leaves_the_remote_byte_identical_and_prints_the_estimate(git_http_repo, http_env):
    assert_ok(run_cli("push", git_http_repo.url, APP, env=http_env))
    git_before, lfs_before = snapshot(git_http_repo.path), _stored(git_http_repo.lfs_storage)
    proc = run_cli("push", git_http_repo.url, TOOL, "--dry-run", env=http_env)
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("estimate: 1 LFS object(s) the host lacks")
    assert "acme/tool:2.0: sha256:" in proc.stdout and lines[-1] == "dry run: nothing uploaded, nothing committed"
    assert snapshot(git_http_repo.path) == git_before and _stored(git_http_repo.lfs_storage) == lfs_before
    proc = run_cli("push", git_http_repo.url, TOOL, "--dry-run", "--format", "json", env=http_env)
    assert_ok(proc)
    data = json.loads(proc.stdout)
    assert data["dry_run"] and data["commit"] is None and data["estimate"]["objects"] == 1
    real = run_cli("push", git_http_repo.url, TOOL, "--format", "json", env=http_env)
    assert_ok(real)
    pushed = json.loads(real.stdout)
    assert pushed["estimate"] == data["estimate"]
    assert _stored(git_http_repo.lfs_storage)[1] - lfs_before[1] == data["estimate"]["bytes"]


def test_dry_run_into_a_new_local_registry_creates_nothing(tmp_path):
    target = tmp_path / "new.git"
    proc = run_cli("push", target, APP, "--dry-run")
    assert_ok(proc)
    assert proc.stdout.startswith("estimate: 3 LFS object(s) the host lacks")
    assert not target.exists()


def test_a_local_push_ends_with_the_bytes_sent(tmp_path):
    proc = run_cli("push", tmp_path / "r.git", APP)
    assert_ok(proc)
    size = sum(p.stat().st_size for p in (tmp_path / "r.git" / "lfs" / "objects").rglob("*") if p.is_file())
    assert proc.stdout.splitlines()[-1] == f"sent to the host: {_human(size)} of LFS objects"
    again = run_cli("push", tmp_path / "r.git", APP)
    assert_ok(again)
    assert again.stdout.splitlines()[-1] == "sent to the host: 0B of LFS objects"


def _human(n: int) -> str:
    from lfsreg.cli.sizes import human_size

    return human_size(n)


def test_pull_says_what_came_from_the_host_and_from_the_cache(git_http_repo, http_env, tmp_path):
    assert_ok(run_cli("push", git_http_repo.url, APP, env=http_env))
    layers = sum(p.stat().st_size for p in git_http_repo.lfs_storage.rglob("*") if p.is_file())
    env = {**http_env, "LFSREG_CACHE": str(tmp_path / "fresh")}
    traffic = lfsreg.api.Traffic()
    reg = lfsreg.Registry(git_http_repo.url, options=lfsreg.api.RemoteOptions(cache_dir=env["LFSREG_CACHE"]))
    reg.pull(["acme/app:1.0"], f"oci:{tmp_path / 'one'}", traffic=traffic)
    assert (traffic.from_host, traffic.from_cache, traffic.local) == (layers, 0, False)
    proc = run_cli("pull", git_http_repo.url, "acme/app:1.0", "-o", f"oci:{tmp_path / 'two'}", env=env)
    assert_ok(proc)
    assert proc.stdout.splitlines()[-1] == f"moved 0B from the host, {_human(layers)} from the local cache"


def test_a_push_over_ssh_estimates_what_the_host_stores(sshd_server, git_http_server, tmp_path, monkeypatch):
    repo = git_http_server.create_repo()
    key = sshd_server.add_key(repo)
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    options = lfsreg.api.RemoteOptions(ssh=lfsreg.api.SshSettings(identity=str(key.path), known_hosts=str(sshd_server.known_hosts)))
    reg = lfsreg.Registry(sshd_server.url(repo), options=options)
    before = _stored(repo.lfs_storage)
    result = reg.push([APP])
    after = _stored(repo.lfs_storage)
    assert result.estimate is not None and result.estimate.bytes == after[1] - before[1] > 0


def test_the_estimate_counts_chunks_as_giftless_stores_them(git_http_repo, http_env, tmp_path):
    from test_chunked_layers import big_archive

    big_archive(tmp_path / "big.tar", [300_000, 1000])  # one layer of 5 chunks of 64 KiB, one small
    source = f"docker-archive:{tmp_path / 'big.tar'}"
    assert_ok(run_cli("config", git_http_repo.url, "limits.object", "64KiB", env=http_env))
    before = _stored(git_http_repo.lfs_storage)
    dry = run_cli("push", git_http_repo.url, source, "--compression", "none", "--dry-run", "--format", "json", env=http_env)
    assert_ok(dry)
    assert _stored(git_http_repo.lfs_storage) == before
    proc = run_cli("push", git_http_repo.url, source, "--compression", "none", "--format", "json", env=http_env)
    assert_ok(proc)
    result = json.loads(proc.stdout)
    after = _stored(git_http_repo.lfs_storage)
    assert (result["estimate"]["objects"], result["estimate"]["bytes"]) == (after[0] - before[0], after[1] - before[1])
    assert result["estimate"] == json.loads(dry.stdout)["estimate"]
    assert result["estimate"]["objects"] == 6  # 5 chunks and the small layer
    assert max(p.stat().st_size for p in git_http_repo.lfs_storage.rglob("*") if p.is_file()) <= 64 << 10
