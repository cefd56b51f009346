"""``lfsreg copy SRC DST [IMAGE...]`` (issue 10): images between any two registry locations,
moving only the LFS objects the destination lacks, in one commit without history.

Against local registries, file:// URLs, nginx + git http-backend + giftless (objects counted and
their files' mtimes watched in giftless's own storage), and sshd (git-lfs-authenticate).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import commit_count, lfs_objects, run_cli, snapshot, tree_files
from gitenv import cli_env
from imageverify import FIXTURES, source_image, verify_docker_archive

from lfsreg.registry import layout

APP, TOOL, MULTI = "acme/app:1.0", "acme/tool:2.0", "acme/multi:1.0"
SOURCES = {
    APP: f"oci:{FIXTURES / 'app.oci'}:1.0",
    TOOL: f"oci:{FIXTURES / 'tool.oci'}:2.0",
    MULTI: f"oci:{FIXTURES / 'multi.oci'}:1.0",
}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp, **extra)


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _copy(src, dst, *images: str, env: dict[str, str]) -> dict:
    return json.loads(_ok(run_cli("copy", str(src), str(dst), *images, "--format", "json", env=env)).stdout)


def _layer_oids(repo: Path) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path in tree_files(repo, "layers/")}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("source") / "src.git"
    env = _env(repo.parent)
    for ref, src in SOURCES.items():
        _ok(run_cli("push", repo, src, "--tag", ref, env=env))
    return repo


def _pull_matches(repo, ref: str, tmp: Path, env: dict[str, str]) -> None:
    out = tmp / (ref.replace("/", "_").replace(":", "_") + ".tar")
    _ok(run_cli("pull", str(repo), ref, "-o", f"docker-archive:{out}", env=env))
    (image,) = verify_docker_archive(out)
    src = source_image(SOURCES[ref])
    assert (image.config_digest, image.diff_ids) == (src.config_digest, src.diff_ids)


def test_copy_local_to_local_moves_only_what_is_missing(source, tmp_path):
    env = _env(tmp_path)
    dst = tmp_path / "dst.git"
    first = _copy(source, dst, APP, env=env)
    assert [(t["name"], t["tag"]) for t in first["tags"]] == [("acme/app", "1.0")]
    app_objects = len(lfs_objects(dst))
    assert first["objects_copied"] == first["objects"] == app_objects
    assert first["bytes_copied"] == sum(p.stat().st_size for p in lfs_objects(dst))
    assert first["bytes_downloaded"] == 0  # a local source is read in place
    inodes = {p: p.stat().st_ino for p in lfs_objects(dst)}  # not mtimes: a reused object is touched (gc's grace)
    second = _copy(source, dst, env=env)  # every tag: app's objects are there already
    assert {(t["name"], t["tag"]) for t in second["tags"]} == {("acme/app", "1.0"), ("acme/tool", "2.0"), ("acme/multi", "1.0")}
    assert second["objects_copied"] == len(lfs_objects(dst)) - app_objects
    assert second["objects"] == len(lfs_objects(dst)) == len(lfs_objects(source))
    assert all(p.stat().st_ino == i for p, i in inodes.items())  # not one of them written again
    assert commit_count(dst) == 2  # one commit per copy, no history of the source's three pushes
    assert tree_files(dst, "blobs/") == tree_files(source, "blobs/")
    assert tree_files(dst, "layers/") == tree_files(source, "layers/")
    assert tree_files(dst, "diffids/") == tree_files(source, "diffids/")  # dedup keeps working in the copy
    again = _copy(source, dst, env=env)
    assert again["objects_copied"] == 0 and again["commit"] is None  # nothing to do: no commit
    _ok(run_cli("verify", str(dst), env=env))
    for ref in (APP, TOOL):
        _pull_matches(dst, ref, tmp_path, env)


def test_copy_names_a_whole_image_and_text_output(source, tmp_path):
    env = _env(tmp_path)
    dst = tmp_path / "dst.git"
    proc = _ok(run_cli("copy", str(source), f"file://{dst}", "acme/tool", env=env))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{TOOL}: sha256:")
    assert lines[-1].startswith("1 tag(s) copied; ")
    assert set(tree_files(dst, "repositories/")) == {f"{layout.NEW.tags_dir('acme/tool')}/2.0", f"{layout.NEW.name_dir('acme/tool')}/_pull"}


def test_copy_refuses_bad_input_and_writes_nothing(source, tmp_path):
    env = _env(tmp_path)
    dst = tmp_path / "dst.git"
    proc = run_cli("copy", str(source), str(dst), "acme/nope:1", env=env)
    assert proc.returncode == 1 and "no image acme/nope:1" in proc.stderr
    assert not dst.exists()
    proc = run_cli("copy", str(source), str(dst), "Bad Name", env=env)
    assert proc.returncode == 2
    assert not dst.exists()
    proc = run_cli("copy", str(source), "gopher://x/y", env=env)
    assert proc.returncode == 2


def test_a_source_object_missing_leaves_the_destination_as_it_was(source, tmp_path):
    env = _env(tmp_path)
    src = tmp_path / "src.git"
    shutil.copytree(source, src, symlinks=True)
    dst = tmp_path / "dst.git"
    _copy(src, dst, APP, env=env)
    before = snapshot(dst)
    tool_only = sorted(_manifest_oids(src, TOOL) - _layer_oids(dst))
    victim = next(p for p in lfs_objects(src) if p.name == tool_only[0])
    victim.unlink()
    proc = run_cli("copy", str(src), str(dst), TOOL, env=env)
    assert proc.returncode == 1 and tool_only[0][:12] in proc.stderr, proc.stderr
    after = snapshot(dst)
    assert after[0] == before[0]  # main did not move
    fresh = tmp_path / "fresh.git"
    assert run_cli("copy", str(src), str(fresh), TOOL, env=env).returncode == 1
    assert not fresh.exists()  # a destination the failed copy created is removed


# -- real servers -----------------------------------------------------------------------------------
def _giftless(repo) -> dict[str, int]:
    """giftless's files of ``repo``: oid -> mtime (ns)."""
    store = repo.lfs_storage
    return {p.name: p.stat().st_mtime_ns for p in store.iterdir() if p.is_file()} if store and store.exists() else {}


@pytest.mark.interop
def test_copy_local_to_https_uploads_only_missing_objects(source, git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    url = git_http_repo.url
    first = _copy(source, url, APP, env=env)
    stored = _giftless(git_http_repo)
    assert len(stored) == first["objects_copied"] == first["objects"]
    assert first["bytes_copied"] == sum(git_http_repo.lfs_object(o).stat().st_size for o in stored)
    second = _copy(source, url, env=env)
    now = _giftless(git_http_repo)
    assert set(now) == _layer_oids(source)
    assert second["objects_copied"] == len(now) - len(stored)  # the count the host received
    assert second["bytes_copied"] == sum(git_http_repo.lfs_object(o).stat().st_size for o in set(now) - set(stored))
    assert all(now[o] == t for o, t in stored.items())  # what giftless had was not uploaded again
    assert commit_count(git_http_repo.path) == 2
    _ok(run_cli("verify", url, "--deep", env=env))
    fresh = _env(tmp_path / "fresh", LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    _pull_matches(url, TOOL, tmp_path, fresh)


@pytest.mark.interop
def test_copy_https_to_local_and_https_to_https(source, git_http_server, tmp_path):
    creds = {"LFSREG_USERNAME": git_http_server.user, "LFSREG_PASSWORD": git_http_server.password}
    env = _env(tmp_path, **creds)
    a, b = git_http_server.create_repo(), git_http_server.create_repo()
    _copy(source, a.url, env=env)
    down = _env(tmp_path / "down", **creds)  # an empty cache: every object comes from the host
    local = tmp_path / "local.git"
    result = _copy(a.url, local, env=down)
    assert result["bytes_downloaded"] == result["bytes_copied"] == sum(p.stat().st_size for p in lfs_objects(local))
    assert tree_files(local, "blobs/") == tree_files(source, "blobs/")
    assert tree_files(local, "layers/") == tree_files(source, "layers/")
    assert _copy(a.url, local, env=down)["bytes_downloaded"] == 0  # nothing lacking: nothing fetched
    _ok(run_cli("verify", str(local), "--deep", env=down))
    _pull_matches(local, APP, tmp_path, down)
    between = _copy(a.url, b.url, TOOL, env=down)
    assert set(_giftless(b)) == _manifest_oids(source, TOOL)
    assert between["objects_copied"] == len(_giftless(b))
    assert commit_count(b.path) == 1
    _ok(run_cli("verify", b.url, env=down))


def _manifest_oids(repo: Path, ref: str) -> set[str]:
    name, tag = ref.split(":")
    digest = tree_files(repo, f"{layout.NEW.tags_dir(name)}/{tag}")[f"{layout.NEW.tags_dir(name)}/{tag}"].decode().strip()
    path = layout.NEW.hex_path("blobs", digest[7:])
    manifest = json.loads(tree_files(repo, path)[path])
    return {layer["digest"].split(":")[1] for layer in manifest["layers"]}


@pytest.mark.interop
def test_copy_over_ssh_to_local(source, sshd_server, git_http_server, tmp_path):
    repo = git_http_server.create_repo()
    key = sshd_server.add_key(repo)
    env = _env(tmp_path, LFSREG_SSH_KEY=str(key.path), LFSREG_SSH_KNOWN_HOSTS=str(sshd_server.known_hosts))
    url = sshd_server.url(repo)
    pushed = _copy(source, url, APP, env=env)
    assert pushed["objects_copied"] == len(_giftless(repo))
    fresh = _env(tmp_path / "fresh", LFSREG_SSH_KEY=str(key.path), LFSREG_SSH_KNOWN_HOSTS=str(sshd_server.known_hosts))
    local = tmp_path / "local.git"
    back = _copy(url, local, env=fresh)
    assert back["bytes_downloaded"] == back["bytes_copied"] > 0
    _pull_matches(local, APP, tmp_path, fresh)
