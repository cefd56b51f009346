"""Remote registries over HTTP(S) against real servers started on 127.0.0.1 (tests/peers/):
stock ``git http-backend`` behind nginx with basic auth, giftless on the same base URL (as
GitHub serves both), and dulwich's lfs_server as a second, independent LFS server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import check_no_crash_text
from conftest import assert_error, assert_ok, fixture, run_cli
from gitenv import cli_env, isolated_git_env, require_tool, run_git
from imageverify import skopeo_inspect, source_image, verify_docker_archive, verify_oci_archive, verify_oci_layout
from peers import use_credential_store

from lfsreg.registry import layout

pytestmark = pytest.mark.interop


def _creds(server) -> dict[str, str]:
    return {"LFSREG_USERNAME": server.user, "LFSREG_PASSWORD": server.password}


SOURCES = [
    ("docker-archive:" + str(fixture("app.docker.tar")), "acme/app:1.0"),
    ("oci:" + str(fixture("app.oci")) + ":1.0", "acme/app-oci:1.0"),
    ("oci-archive:" + str(fixture("app.oci.tar")) + ":1.0", "acme/app-ociarchive:1.0"),
    ("oci:" + str(fixture("app-zstd.oci")) + ":1.0", "acme/app-zstd:1.0"),
]


def test_roundtrip_every_format_through_https(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path, **_creds(git_http_server))
    for source, name in SOURCES:
        assert_ok(run_cli("push", git_http_repo.url, source, "--tag", name, env=env))
    multi = "oci:" + str(fixture("multi.oci")) + ":1.0"
    assert_ok(run_cli("push", git_http_repo.url, multi, "--tag", "acme/multi:1.0", env=env))
    for source, name in SOURCES:
        src = source_image(source.replace("oci-archive:", "oci:").replace("app.oci.tar", "app.oci"))
        out = tmp_path / name.replace("/", "_").replace(":", "_")
        assert_ok(run_cli("pull", git_http_repo.url, name, "-o", f"docker-archive:{out}.tar", env=env))
        (image,) = verify_docker_archive(f"{out}.tar")
        assert image.config_digest == src.config_digest and image.diff_ids == src.diff_ids
        assert_ok(run_cli("pull", git_http_repo.url, name, "-o", f"oci:{out}.oci", env=env))
        (image,) = verify_oci_layout(f"{out}.oci")
        assert image.config_digest == src.config_digest and image.diff_ids == src.diff_ids
    archive = tmp_path / "multi.tar"
    assert_ok(run_cli("pull", git_http_repo.url, "acme/multi:1.0", "-o", f"oci-archive:{archive}", env=env))
    source = fixture("multi.oci")
    assert sorted((i.manifest_digest, i.config_digest) for i in verify_oci_archive(archive)) == sorted(
        (i.manifest_digest, i.config_digest) for i in verify_oci_layout(source)
    )
    (root,) = json.loads((source / "index.json").read_text())["manifests"]
    index = json.loads((source / "blobs" / "sha256" / root["digest"][7:]).read_text())
    assert skopeo_inspect(f"oci-archive:{archive}", "--raw") == index  # stock skopeo reads the same index
    # every LFS object went to giftless through the server's own base URL
    assert git_http_repo.lfs_storage is not None and any(git_http_repo.lfs_storage.iterdir())


def test_second_pull_is_served_from_the_cache(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path, **_creds(git_http_server))
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("app.docker.tar")), env=env))
    fresh = cli_env(tmp_path / "second", **_creds(git_http_server))
    log = git_http_server.access_log
    before = log.read_text().count("/objects/storage/")
    assert_ok(run_cli("pull", git_http_repo.url, "acme/app:1.0", "-o", f"oci:{tmp_path / 'a.oci'}", env=fresh))
    middle = log.read_text().count("/objects/storage/")
    assert middle - before == 3  # three layers downloaded
    assert_ok(run_cli("pull", git_http_repo.url, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'b.tar'}", env=fresh))
    assert log.read_text().count("/objects/storage/") == middle  # nothing downloaded again
    # the first pull of a fresh cache fetched only the tip (a shallow mirror)
    mirrors = list((tmp_path / "second" / "cache" / "mirrors").iterdir())
    assert len(mirrors) == 1 and (mirrors[0] / "shallow").exists()


def test_dulwich_lfs_server_as_lfs_endpoint(git_http_server, git_http_repo, dulwich_lfs_server, tmp_path):
    env = cli_env(tmp_path, **_creds(git_http_server), LFSREG_LFS_URL=dulwich_lfs_server.lfs_url)
    assert_ok(run_cli("push", git_http_repo.url, "oci:" + str(fixture("tool.oci")) + ":2.0", "--tag", "acme/tool:2.0", env=env))
    src = source_image("oci:" + str(fixture("tool.oci")) + ":2.0")
    for digest in src.layer_digests:
        assert dulwich_lfs_server.object_path(digest.split(":")[1]).exists()
    fresh = cli_env(tmp_path / "b", **_creds(git_http_server), LFSREG_LFS_URL=dulwich_lfs_server.lfs_url)
    assert_ok(run_cli("pull", git_http_repo.url, "acme/tool:2.0", "-o", f"oci:{tmp_path / 'tool.oci'}", env=fresh))
    (image,) = verify_oci_layout(tmp_path / "tool.oci")
    assert image.layer_digests == src.layer_digests


def test_stock_git_lfs_reads_what_lfsreg_pushed_and_back(git_http_server, git_http_repo, tmp_path):
    require_tool("git-lfs")
    env = cli_env(tmp_path, **_creds(git_http_server))
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("app.docker.tar")), env=env))
    genv = isolated_git_env(tmp_path / "git")
    use_credential_store(genv, git_http_server, tmp_path)
    run_git(["clone", "-q", git_http_repo.url, str(tmp_path / "clone")], cwd=tmp_path, env=genv)
    clone = tmp_path / "clone"
    assert run_git(["status", "--porcelain"], cwd=clone, env=genv).stdout == b""
    layers = [p for p in (clone / "layers").rglob("*") if p.is_file()]
    assert layers
    import hashlib

    for p in layers:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    # stock git adds a tag; lfsreg sees it over HTTPS and pulls it, verified
    digest = (clone / f"{layout.NEW.tags_dir('acme/app')}/1.0").read_text()
    (clone / f"{layout.NEW.tags_dir('acme/app')}/from-git").write_text(digest)
    run_git(["add", "-A"], cwd=clone, env=genv)
    run_git(["commit", "-qm", "tag from git"], cwd=clone, env=genv)
    run_git(["push", "-q", "origin", "main"], cwd=clone, env=genv)
    fresh = cli_env(tmp_path / "fresh", **_creds(git_http_server))
    assert_ok(run_cli("pull", git_http_repo.url, "acme/app:from-git", "-o", f"docker-archive:{tmp_path / 'g.tar'}", env=fresh))
    verify_docker_archive(tmp_path / "g.tar")
    # and lfsreg pushes on top of git's commit
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("base.docker.tar")), env=env))
    run_git(["pull", "-q", "--ff-only"], cwd=clone, env=genv)
    assert (clone / f"{layout.NEW.tags_dir('acme/base')}/1.0").exists()


def test_credentials_from_netrc_and_git_credentials(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path)
    (Path(env["HOME"]) / ".netrc").write_text(f"machine 127.0.0.1 login {git_http_server.user} password {git_http_server.password}\n")
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("base.docker.tar")), env=env))
    env2 = cli_env(tmp_path / "two")
    (Path(env2["HOME"]) / ".git-credentials").write_text(git_http_server.credential_line() + "\n")
    proc = run_cli("images", git_http_repo.url, env=env2)
    assert_ok(proc)
    assert "acme/base" in proc.stdout


def test_missing_and_wrong_credentials_are_clear_and_secret_free(git_http_server, git_http_repo, tmp_path):
    proc = run_cli("images", git_http_repo.url, env=cli_env(tmp_path))
    assert_error(proc, 1, "authentication failed")
    wrong = cli_env(tmp_path, LFSREG_USERNAME="tester", LFSREG_PASSWORD="not-the-pw-42")
    for argv in (["images", git_http_repo.url], ["-v", "push", git_http_repo.url, "docker-archive:" + str(fixture("base.docker.tar"))]):
        proc = run_cli(*argv, env=wrong)
        assert proc.returncode == 1
        assert "not-the-pw-42" not in proc.stderr + proc.stdout
        assert "authentication failed" in proc.stderr
    url_with_secret = git_http_repo.url.replace("http://", "http://tester:not-the-pw-42@")
    proc = run_cli("-v", "images", url_with_secret, env=cli_env(tmp_path))
    assert proc.returncode == 1 and "not-the-pw-42" not in proc.stderr + proc.stdout
    assert git_http_repo.main() is None


def test_failed_lfs_upload_leaves_remote_unchanged(git_http_server, git_http_repo, tmp_path):
    from fault_lfs import FaultLfsServer

    env = cli_env(tmp_path, **_creds(git_http_server))
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("base.docker.tar")), env=env))
    before = git_http_repo.main()
    with FaultLfsServer() as lfs:
        lfs.set_read_only("repo", "batch")
        proc = run_cli(
            "push", git_http_repo.url, "docker-archive:" + str(fixture("app.docker.tar")), env={**env, "LFSREG_LFS_URL": lfs.endpoint()}
        )
    assert_error(proc, 1, "403")
    assert git_http_repo.main() == before


def test_concurrent_https_pushers_all_land(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path, **_creds(git_http_server))
    assert_ok(run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("base.docker.tar")), env=env))
    procs = []
    for i in range(4):
        penv = cli_env(tmp_path / f"p{i}", **_creds(git_http_server))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lfsreg",
                    "push",
                    git_http_repo.url,
                    "docker-archive:" + str(fixture("app.docker.tar")),
                    "--tag",
                    f"acme/app:c{i}",
                ],
                env=penv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=180)
        check_no_crash_text(err, out)
        assert p.returncode == 0, err
    proc = run_cli("tags", git_http_repo.url, "acme/app", env=env)
    assert_ok(proc)
    for i in range(4):
        assert f"c{i}" in proc.stdout
