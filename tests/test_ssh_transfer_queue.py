"""The pure-SSH ``git-lfs-transfer`` adapter runs under the one transfer queue: retries included.

Before issue 8 the SSH path had its own pool with no retries: one ``status 500`` or one cut
session failed the whole push or pull. Now a failed exchange closes its session and the queue
retries the object on a fresh one, as it does for HTTP. Faults are one-shot scripts of the
test ``git-lfs-transfer`` server (``tests/peers/lfs_transfer_server.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env

APP = "docker-archive:" + str(fixture("app.docker.tar"))


def _oids(tmp_path: Path) -> list[str]:
    """The LFS oids a push of APP produces (pushed to a local registry to learn them)."""
    local = tmp_path / "local.git"
    assert_ok(run_cli("push", local, APP, env={**os.environ, "LFSREG_CACHE": str(tmp_path / "local-cache")}))
    return sorted(p.name for p in (local / "lfs" / "objects").rglob("*") if p.is_file())


def _script(store: Path, command: str, oid: str, fault: str) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    marker = store / f".fault.{command}.{oid}"
    marker.write_text(fault)
    return marker


def test_upload_faults_are_retried(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name
    oids = _oids(tmp_path)
    assert len(oids) == 3
    markers = [_script(store, "put-object", oids[0], "500"), _script(store, "put-object", oids[1], "cut")]
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    assert not any(m.exists() for m in markers), "the faults were not hit"
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == oids


def test_download_faults_are_retried(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    oids = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))
    markers = [_script(store, "get-object", oids[0], "cut"), _script(store, "get-object", oids[2], "503")]
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    assert not any(m.exists() for m in markers), "the faults were not hit"
    assert out.stat().st_size > 0


def test_a_missing_object_is_one_line(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    victim = sorted(p for p in store.iterdir() if not p.name.startswith("."))[0]
    victim.unlink()
    out = tmp_path / "x.tar"
    proc = run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert victim.name in proc.stderr.splitlines()[0]
