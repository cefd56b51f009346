"""The real servers of tests/peers/ are real and wired as documented, checked with stock clients only.

* git + git-lfs push through the combined nginx (git http-backend + giftless) with basic auth
  from a credential store; the objects land in giftless's storage; a fresh clone + ``git lfs
  pull`` (and a smudging clone with URL userinfo) gets identical bytes.
* wrong or missing credentials: git fails, the LFS batch API answers 401; the signed object
  hrefs work without basic auth (the exemption the Bearer header relies on).
* dulwich.lfs_server and giftless alone answer the batch API (``requests``) and round-trip an
  object.
* a server stopped by its context manager leaves no process of its group behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests
from gitenv import isolated_git_env, run_git
from peers import (
    LFS_HEADERS,
    GitHttpServer,
    PeerRepo,
    lfs_batch_body,
    start_dulwich_lfs,
    start_git_http,
    use_credential_store,
)
from peers.nginx import log_lines

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop

POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_text(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return run_git(args, cwd=cwd, env=env).stdout.decode().strip()


def make_lfs_commit(work: Path, env: dict[str, str]) -> dict[str, bytes]:
    """A repo with two LFS files (*.bin) and a plain one; returns the LFS files' contents."""
    run_git(["init", "-q", work], cwd=work.parent, env=env)
    run_git(["lfs", "track", "*.bin"], cwd=work, env=env)
    files = {"a.bin": os.urandom(300 * 1024), "big/b.bin": os.urandom(1024 * 1024 + 17)}
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    (work / "README").write_text("plain text\n")
    run_git(["add", "-A"], cwd=work, env=env)
    run_git(["commit", "-q", "-m", "lfs smoke"], cwd=work, env=env)
    return files


def test_git_lfs_roundtrip_through_combined_server(git_http_server: GitHttpServer, git_http_repo: PeerRepo, tmp_path: Path):
    env = isolated_git_env(tmp_path)
    use_credential_store(env, git_http_server, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    files = make_lfs_commit(src, env)
    head = git_text(["rev-parse", "HEAD"], src, env)

    # push: credentials come from the store, the LFS endpoint is derived (<remote>/info/lfs)
    run_git(["remote", "add", "origin", git_http_repo.url], cwd=src, env=env)
    assert git_text(["lfs", "env"], src, env).count(git_http_repo.lfs_url) >= 1
    run_git(["push", "-q", "origin", "main"], cwd=src, env=env)

    # git objects in the bare repo, LFS objects (only) in giftless's storage for this repo
    bare_env = {**env, "GIT_DIR": str(git_http_repo.path)}
    assert git_text(["rev-parse", "refs/heads/main"], tmp_path, bare_env) == head
    assert git_http_repo.lfs_storage is not None
    stored = sorted(p.name for p in git_http_repo.lfs_storage.iterdir())
    assert stored == sorted(oid_of(d) for d in files.values())
    for data in files.values():
        assert git_http_repo.lfs_object(oid_of(data)).read_bytes() == data
    assert not (git_http_repo.path / "lfs").exists()  # nothing went to the git server's disk

    access = "\n".join(log_lines(git_http_server.access_log, until=lambda lines: any("/objects/storage/" in x for x in lines)))
    assert f"/{git_http_repo.name}.git/info/lfs/objects/batch" in access
    assert f"PUT /{git_http_repo.name}.git/info/lfs/objects/storage/" in access

    # fresh clone without smudge: pointers; then git lfs pull: identical bytes
    run_git(["clone", "-q", git_http_repo.url, "dst"], cwd=tmp_path, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    dst = tmp_path / "dst"
    for name in files:
        assert (dst / name).read_bytes().startswith(POINTER_PREFIX)
    run_git(["lfs", "pull"], cwd=dst, env=env)
    for name, data in files.items():
        assert (dst / name).read_bytes() == data
    assert git_text(["status", "--porcelain"], dst, env) == ""

    # the other credential route: URL userinfo (no helper), smudging clone
    env2 = isolated_git_env(tmp_path / "second")
    run_git(["clone", "-q", git_http_repo.auth_url, "dst2"], cwd=tmp_path, env=env2)
    for name, data in files.items():
        assert (tmp_path / "dst2" / name).read_bytes() == data


def test_wrong_or_missing_password_fails(git_http_server: GitHttpServer, git_http_repo: PeerRepo, tmp_path: Path):
    env = isolated_git_env(tmp_path)
    wrong = git_http_repo.auth_url.replace(git_http_server.password, "wrong-password", 1)
    proc = run_git(["ls-remote", wrong], cwd=tmp_path, env=env, check=False)
    assert proc.returncode != 0
    assert b"Authentication failed" in proc.stderr
    # no credentials at all: git may not prompt (GIT_TERMINAL_PROMPT=0) and fails
    proc = run_git(["ls-remote", git_http_repo.url], cwd=tmp_path, env=env, check=False)
    assert proc.returncode != 0
    # right credentials: an empty repo lists no refs
    assert run_git(["ls-remote", git_http_repo.auth_url], cwd=tmp_path, env=env).stdout == b""


def test_lfs_api_auth_boundary(git_http_server: GitHttpServer, git_http_repo: PeerRepo):
    """Batch API behind basic auth; the signed object hrefs (upload, verify, download) are not."""
    data = os.urandom(4096)
    oid = oid_of(data)
    batch = f"{git_http_repo.lfs_url}/objects/batch"
    body = lfs_batch_body("upload", [(oid, len(data))])
    assert requests.post(batch, data=body, headers=LFS_HEADERS, timeout=10).status_code == 401
    assert requests.post(batch, data=body, headers=LFS_HEADERS, auth=("tester", "nope"), timeout=10).status_code == 401

    resp = requests.post(batch, data=body, headers=LFS_HEADERS, auth=git_http_server.auth, timeout=10)
    assert resp.status_code == 200, resp.text
    actions = resp.json()["objects"][0]["actions"]
    upload, verify = actions["upload"], actions["verify"]
    assert upload["href"].startswith(f"{git_http_repo.url}/info/lfs/objects/storage/")  # back through nginx
    # the action's own header (Bearer) is the only credential a client sends with it
    put = requests.put(upload["href"], data=data, headers=upload.get("header", {}), timeout=10)
    assert put.status_code in (200, 201), put.text
    ver = requests.post(
        verify["href"], json={"oid": oid, "size": len(data)}, headers={**LFS_HEADERS, **verify.get("header", {})}, timeout=10
    )
    assert ver.status_code == 200, ver.text
    assert git_http_repo.lfs_object(oid).read_bytes() == data

    resp = requests.post(
        batch, data=lfs_batch_body("download", [(oid, len(data))]), headers=LFS_HEADERS, auth=git_http_server.auth, timeout=10
    )
    assert resp.status_code == 200, resp.text
    download = resp.json()["objects"][0]["actions"]["download"]
    got = requests.get(download["href"], headers=download.get("header", {}), timeout=10)
    assert got.status_code == 200
    assert got.content == data


def test_giftless_alone(giftless_server):
    data = b"giftless direct\n" * 100
    oid = oid_of(data)
    batch = f"{giftless_server.lfs_url('org/direct')}/objects/batch"
    resp = requests.post(batch, data=lfs_batch_body("upload", [(oid, len(data))]), headers=LFS_HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    upload = resp.json()["objects"][0]["actions"]["upload"]
    assert requests.put(upload["href"], data=data, headers=upload.get("header", {}), timeout=10).ok
    assert giftless_server.object_path("org/direct", oid).read_bytes() == data
    # quirk: a download batch in which every object is missing is an HTTP 404
    missing = lfs_batch_body("download", [("0" * 64, 1)])
    assert requests.post(batch, data=missing, headers=LFS_HEADERS, timeout=10).status_code == 404


def test_dulwich_lfs_server(dulwich_lfs_server):
    data = b"dulwich lfs\n" * 1000
    oid = oid_of(data)
    batch = f"{dulwich_lfs_server.lfs_url}/objects/batch"
    resp = requests.post(batch, data=lfs_batch_body("upload", [(oid, len(data))]), headers=LFS_HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    upload = resp.json()["objects"][0]["actions"]["upload"]
    assert requests.put(upload["href"], data=data, headers=upload.get("header", {}), timeout=10).ok
    assert dulwich_lfs_server.object_path(oid).read_bytes() == data

    resp = requests.post(batch, data=lfs_batch_body("download", [(oid, len(data))]), headers=LFS_HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    download = resp.json()["objects"][0]["actions"]["download"]
    assert requests.get(download["href"], headers=download.get("header", {}), timeout=10).content == data
    # a missing object: 200 with a per-object error
    resp = requests.post(batch, data=lfs_batch_body("download", [("1" * 64, 5)]), headers=LFS_HEADERS, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["objects"][0]["error"]["code"] == 404


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_servers_stop_by_process_group(tmp_path: Path):
    """A private git server (own user/password, no LFS) and dulwich server; nothing survives them."""
    with start_git_http(tmp_path / "git", user="alice", password="p@ss w:rd") as server:
        repo = server.create_repo("org/own")
        env = isolated_git_env(tmp_path, lfs=False)
        assert run_git(["ls-remote", repo.auth_url], cwd=tmp_path, env=env).returncode == 0
        nginx_pid = int((server.workdir / "nginx.pid").read_text())
        os.kill(nginx_pid, 0)
    assert _group_gone(nginx_pid)
    with start_dulwich_lfs(tmp_path / "dul") as dul:
        status = requests.post(
            f"{dul.url}/objects/batch", data=lfs_batch_body("download", [("2" * 64, 1)]), headers=LFS_HEADERS, timeout=10
        ).status_code
        assert status == 200
        port = dul.port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
