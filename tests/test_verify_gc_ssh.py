"""``verify``, ``verify --deep`` and ``gc`` over SSH against the real servers.

The test sshd runs git over SSH and, for LFS, either scutiger's ``git-lfs-transfer`` (pure SSH
LFS: objects in the bare repository's ``lfs/objects``) or ``git-lfs-authenticate`` (an HTTPS
endpoint: giftless behind nginx, objects in its storage directory). ``verify`` asks the server
for every object the live tags need without downloading; ``--deep`` downloads and hashes them.
Each finds a missing object, a truncated one, and (``--deep``) one changed in place. ``gc`` of a
remote rewrites the branch over SSH and says what the host must do to reclaim the space: nothing
the live tags need is lost, and the server's objects are all still there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env
from imageverify import source_image, verify_docker_archive

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))  # acme/app:1.0
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))  # acme/tool:2.0, shares its base layer with app


def _store(repo, lfs: str) -> dict[str, Path]:
    """The server's LFS objects of ``repo``: oid -> file."""
    root = repo.path / "lfs" / "objects" if lfs == "scutiger" else repo.lfs_storage
    return {p.name: p for p in root.rglob("*") if p.is_file() and len(p.name) == 64} if root.exists() else {}


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
        return
    path.chmod(0o644)
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else data[:-1] + bytes([data[-1] ^ 1]))


@pytest.mark.parametrize("lfs", ["scutiger", "authenticate"])
def test_verify_over_ssh_finds_missing_truncated_and_changed_objects(sshd_server, git_http_repo, tmp_path, lfs):
    key = sshd_server.add_key(git_http_repo, lfs=lfs)
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path / "push", sshd=sshd_server, key=key)))
    stored = _store(git_http_repo, lfs)
    assert len(stored) == 3  # its three layers: configs and manifests are git blobs

    def verify(*args: str, home: str) -> tuple[int, list[str], dict]:
        env = cli_env(tmp_path / home, sshd=sshd_server, key=key)
        text = run_cli("verify", url, *args, env=env)
        as_json = run_cli("verify", url, *args, "--format", "json", env=env)
        assert as_json.returncode == text.returncode, as_json.stderr
        return text.returncode, text.stdout.splitlines(), json.loads(as_json.stdout)

    code, lines, report = verify(home="v0")
    assert code == 0, lines
    assert report["objects"] == 3 and report["problems"] == [] and report["tags"] == 1
    code, lines, report = verify("--deep", home="v1")
    assert code == 0 and report["deep"] is True, lines

    (missing, truncated, changed) = sorted(stored)
    _damage(stored[missing], "missing")
    _damage(stored[truncated], "truncated")
    _damage(stored[changed], "changed")
    code, lines, report = verify(home="v2")  # no download: a changed copy of the right size is not seen
    assert code == 1
    assert len(report["problems"]) == 2 and len(lines) == 2, lines  # one line per problem
    problem_text = "\n".join(lines)
    assert f"sha256:{missing}" in problem_text and f"sha256:{truncated}" in problem_text and changed not in problem_text
    assert all(line.startswith("acme/app:1.0: LFS object") for line in lines[:2]), lines
    code, lines, report = verify("--deep", home="v3")
    assert code == 1
    flagged = {oid for oid in (missing, truncated, changed) if any(oid in p["message"] for p in report["problems"])}
    assert flagged == {missing, truncated, changed}, report["problems"]
    assert len(report["problems"]) == 3


@pytest.mark.parametrize("lfs", ["scutiger", "authenticate"])
def test_gc_over_ssh_rewrites_the_branch_says_what_the_host_must_do_and_loses_nothing(sshd_server, git_http_repo, tmp_path, lfs):
    key = sshd_server.add_key(git_http_repo, lfs=lfs)
    url = sshd_server.url(git_http_repo)
    env = cli_env(tmp_path / "push", sshd=sshd_server, key=key)
    assert_ok(run_cli("push", url, APP, env=env))
    assert_ok(run_cli("push", url, TOOL, env=env))
    assert_ok(run_cli("rm", url, "acme/tool:2.0", env=env))
    before = {oid: p.read_bytes() for oid, p in _store(git_http_repo, lfs).items()}
    tip = git_http_repo.main()

    dry = run_cli("gc", url, "--dry-run", "--format", "json", env=cli_env(tmp_path / "dry", sshd=sshd_server, key=key))
    assert_ok(dry)
    assert json.loads(dry.stdout)["dry_run"] is True and git_http_repo.main() == tip

    proc = run_cli("gc", url, "--format", "json", env=cli_env(tmp_path / "gc", sshd=sshd_server, key=key))
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert result["local"] is False and result["lfs_deleted"] == 0
    assert result["commits_before"] == 3 and result["commits_after"] == 1
    assert result["live_bytes"] < result["referenced_bytes"]  # the tool's own layer is no longer referenced
    assert "GitLab" in result["remote_hint"] and "GitHub" in result["remote_hint"]
    assert git_http_repo.main() not in (None, tip)  # the branch moved on the server
    text = run_cli("gc", url, env=cli_env(tmp_path / "gc2", sshd=sshd_server, key=key))
    assert_ok(text)
    assert "branch unchanged" in text.stdout and "lfsreg copy" in text.stdout + text.stderr

    # nothing lost: every object is still on the server, the live tag pulls and verifies deeply
    assert {oid: p.read_bytes() for oid, p in _store(git_http_repo, lfs).items()} == before
    fresh = cli_env(tmp_path / "fresh", sshd=sshd_server, key=key)
    tags = run_cli("tags", url, "acme/app", env=fresh)
    assert_ok(tags)
    out = tmp_path / "app.tar"
    assert_ok(run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=fresh))
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == source_image("oci:" + str(fixture("app.oci")) + ":1.0").diff_ids
    assert_ok(run_cli("verify", url, "--deep", env=fresh))
    assert run_cli("pull", url, "acme/tool:2.0", "-o", f"docker-archive:{tmp_path / 't.tar'}", env=fresh).returncode == 1
