"""lfsreg's pure-SSH LFS client against a real ``git-lfs-transfer`` server: scutiger's.

scutiger-lfs (crates.io, version pinned in tools/peers/scutiger-lfs.version, built by
tools/install-test-deps.sh) runs behind the test sshd as the deploy key's forced
``git-lfs-transfer <repo> upload|download``; it keeps objects in the bare repository's
``lfs/objects/xx/yy/<oid>``, as git-lfs does. Its protocol differs from the project's own test
server in ways the real thing is entitled to: no ``id``/``token`` in batch answers, ``noop``
with the size *it* holds for an object it has, ``error: ...`` messages, 400 for a bad upload.
A missing binary skips, or fails under ``CI``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env, run_git
from imageverify import source_image, verify_docker_archive

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))
BASE = "docker-archive:" + str(fixture("base.docker.tar"))


def _objects(repo) -> dict[str, Path]:
    """scutiger's store: ``{oid: path}`` under the bare repo's ``lfs/objects/``."""
    root = repo.path / "lfs" / "objects"
    return {p.name: p for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def _seed(repo, objects: dict[str, bytes]) -> dict[str, int]:
    """Put ``objects`` into scutiger's store of ``repo`` (as a push whose git part failed leaves them); their inodes."""
    inodes = {}
    for oid, data in objects.items():
        path = repo.path / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        inodes[oid] = path.stat().st_ino
    return inodes


@pytest.fixture(scope="module")
def app_objects(tmp_path_factory) -> dict[str, bytes]:
    """The LFS objects a push of APP produces (pushed to a local registry to learn them)."""
    tmp = tmp_path_factory.mktemp("app-objects")
    local = tmp / "local.git"
    assert_ok(run_cli("push", local, APP, env={**os.environ, "LFSREG_CACHE": str(tmp / "cache")}))
    objects = {p.name: p.read_bytes() for p in (local / "lfs" / "objects").rglob("*") if p.is_file()}
    assert len(objects) == 3
    return objects


def _big_image(path: Path, size: int = 400_000) -> str:
    """A docker-archive ``acme/big:1`` whose one layer holds ``size`` random bytes (several pkt-lines)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mtime = size, 1704067200
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    diff_id = hashlib.sha256(layer.getvalue()).hexdigest()
    rootfs = {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": rootfs}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["acme/big:1"], "Layers": [f"{diff_id}/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((f"{diff_id}/layer.tar", layer.getvalue()), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return f"docker-archive:{path}"


def _transfers(sshd, repo, operation: str) -> int:
    return len([c for c in sshd.commands() if c.startswith("git-lfs-transfer") and repo.name in c and c.endswith(" " + operation)])


def test_push_and_pull_through_scutiger(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("--transfers", "2", "push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    stored = _objects(git_http_repo)
    assert len(stored) == 3
    for oid, path in stored.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == oid
        assert path.parent.name == oid[2:4] and path.parent.parent.name == oid[:2]  # git-lfs's layout
    assert _transfers(sshd_server, git_http_repo, "upload") >= 1
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == source_image("oci:" + str(fixture("app.oci")) + ":1.0").diff_ids
    assert _transfers(sshd_server, git_http_repo, "download") >= 1


def test_objects_the_server_has_are_not_sent_again(sshd_server, git_http_repo, tmp_path, app_objects):
    inodes = _seed(git_http_repo, app_objects)  # scutiger answers "noop" for each
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    assert {oid: p.stat().st_ino for oid, p in _objects(git_http_repo).items()} == inodes  # no put-object replaced one
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    verify_docker_archive(out)


def test_a_truncated_copy_on_the_server_is_replaced_by_a_push(sshd_server, git_http_repo, tmp_path, app_objects):
    """scutiger answers ``noop`` with the size of what it holds; lfsreg took any ``noop`` as "has it".

    A copy cut short on the server (an interrupted transfer, a damaged disk) then stayed, the
    push reported success and every pull of the image failed.
    """
    victim = sorted(app_objects)[0]
    _seed(git_http_repo, {**app_objects, victim: app_objects[victim][:-10]})
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    assert {oid: p.read_bytes() for oid, p in _objects(git_http_repo).items()} == app_objects
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    verify_docker_archive(out)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated"])
def test_a_bad_object_on_the_server_fails_the_pull_with_one_line(sshd_server, git_http_repo, tmp_path, damage):
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    victim, path = sorted(_objects(git_http_repo).items())[1]
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:  # same size with one byte changed, or cut short
        path.chmod(0o644)
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]) if damage == "corrupt" else data[: len(data) // 2])
    out = tmp_path / "app.tar"
    before = _transfers(sshd_server, git_http_repo, "download")
    proc = run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    assert proc.returncode == 1, proc.stderr
    # Not retried: the same bytes would come back (before, 8 retries: ~40 s and a session each).
    # A session per object at most (3); a failed exchange closes its session, so a retry opens one.
    assert _transfers(sshd_server, git_http_repo, "download") - before <= 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"sha256:{victim}" in lines[0], proc.stderr
    assert ("not on the server" if damage == "missing" else "the server's copy is damaged") in lines[0]
    assert not out.exists()


def test_stock_git_lfs_reads_what_lfsreg_pushed_through_scutiger_and_back(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path / "lfsreg", sshd=sshd_server, key=key)))
    pushed = {oid: p.read_bytes() for oid, p in _objects(git_http_repo).items()}
    genv = sshd_server.git_env(tmp_path / "git", key)
    before = _transfers(sshd_server, git_http_repo, "download")
    clone = tmp_path / "clone"
    run_git(["clone", "-q", url, str(clone)], cwd=tmp_path, env=genv)
    assert _transfers(sshd_server, git_http_repo, "download") > before  # git-lfs used pure SSH, i.e. scutiger
    layers = {p.name: p.read_bytes() for p in (clone / "layers").rglob("*") if p.is_file()}
    assert layers == pushed  # real content, smudged from scutiger's get-object
    assert run_git(["lfs", "fsck"], cwd=clone, env=genv).returncode == 0
    # scutiger loses every object; stock git-lfs uploads them again, lfsreg reads them
    for path in _objects(git_http_repo).values():
        path.unlink()
    run_git(["lfs", "push", "--all", "origin"], cwd=clone, env=genv)
    assert {oid: p.read_bytes() for oid, p in _objects(git_http_repo).items()} == pushed
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == source_image("oci:" + str(fixture("app.oci")) + ":1.0").diff_ids


def test_a_layer_of_many_packets_both_ways(sshd_server, git_http_repo, tmp_path):
    """400 kB: put-object and get-object span several 64 kB pkt-lines, through scutiger's stream readers."""
    image = _big_image(tmp_path / "big.tar")
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, image, env=cli_env(tmp_path / "push", sshd=sshd_server, key=key)))
    ((oid, path),) = [(o, p) for o, p in _objects(git_http_repo).items() if p.stat().st_size > 300_000]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == oid
    out = tmp_path / "big-out.tar"
    assert_ok(run_cli("pull", url, "acme/big:1", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "pull", sshd=sshd_server, key=key)))
    with tarfile.open(tmp_path / "big.tar") as a, tarfile.open(out) as b:
        layer = next(m for m in a.getmembers() if m.name.endswith("layer.tar"))
        pulled = [m for m in b.getmembers() if m.isfile() and m.size == layer.size]
        assert pulled and b.extractfile(pulled[0]).read() == a.extractfile(layer).read()
