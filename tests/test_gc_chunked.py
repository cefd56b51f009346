"""``gc`` on a registry whose layers are stored as chunks (layers over ``limits.object``, docs/format.md).

A 1 MiB limit stands in for GitHub's 2 GB. Two images: the live one has a chunked layer of its
own and one it shares with the dead one; the dead one has a chunked layer and a small layer of
its own. After the dead tag goes and ``gc`` runs: every chunk of both live layers is kept (the
shared one included), every object only the dead image needed is deleted, the live image still
pulls byte-exact and passes ``verify --deep``, and stock git + git-lfs clone the collected
registry clean.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import assert_ok, commit_count, lfs_objects, run_cli, tree_files
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import verify_docker_archive
from test_chunked_layers import _layer_tar, archive_of

import lfsreg
from lfsreg.registry import layout

MIB = 1 << 20
LIVE, DEAD = "acme/live:1", "acme/dead:1"


def _archive(path: Path, ref: str, layers: list[tuple[str, int]]) -> list[str]:
    """A docker-archive of ``ref`` whose layers are random payloads named by seed (one seed, the same layer)."""
    return archive_of(path, [_layer_tar(size, seed) for seed, size in layers], ref)


def _layer_objects(repo: Path, ref: str) -> dict[str, list[str]]:
    """Layer digest -> the oids of the LFS objects holding it (its chunks in order, or its one object)."""
    info = lfsreg.Registry(str(repo)).inspect(ref)
    out: dict[str, list[str]] = {}
    for layer in info["layers"]:
        hexd = layer["digest"].split(":")[1]
        files = tree_files(repo, layout.NEW.hex_path("layers", hexd))
        out[hexd] = [content.decode().split("oid sha256:")[1].split("\n")[0] for _, content in sorted(files.items())]
    return out


@pytest.mark.interop
def test_gc_keeps_every_chunk_of_live_layers_and_frees_the_dead_ones(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    env = cli_env(tmp_path)
    live_ids = _archive(tmp_path / "live.tar", LIVE, [("shared", int(2.5 * MIB)), ("live", int(1.5 * MIB))])
    _archive(tmp_path / "dead.tar", DEAD, [("shared", int(2.5 * MIB)), ("dead", int(2.2 * MIB)), ("dead-small", 100 << 10)])
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{tmp_path / 'live.tar'}"], object_limit=MIB)
        reg.push([f"docker-archive:{tmp_path / 'dead.tar'}"], object_limit=MIB)
    live = _layer_objects(repo, LIVE)
    dead = _layer_objects(repo, DEAD)
    shared = set(live) & set(dead)
    assert len(shared) == 1 and all(len(oids) >= 2 for oids in live.values())  # both live layers are chunked
    assert sum(len(oids) >= 2 for oids in dead.values()) == 2  # the shared one and the dead one's own
    live_oids = {o for oids in live.values() for o in oids}
    dead_only = {o for d, oids in dead.items() if d not in shared for o in oids}
    assert {p.name for p in lfs_objects(repo)} == live_oids | dead_only

    assert_ok(run_cli("rm", str(repo), DEAD, env=env))
    proc = run_cli("gc", str(repo), "--grace", "0", "--format", "json", env=env)
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert result["lfs_deleted"] == len(dead_only)
    assert result["live_bytes"] == sum((repo / "lfs" / "objects" / o[:2] / o[2:4] / o).stat().st_size for o in live_oids)
    assert {p.name for p in lfs_objects(repo)} == live_oids  # every live chunk kept, nothing dead left
    assert _layer_objects(repo, LIVE) == live  # the chunk pointers are as they were
    assert commit_count(repo) == 1

    out = tmp_path / "pulled.tar"
    assert_ok(run_cli("pull", str(repo), LIVE, "-o", f"docker-archive:{out}", env=env))
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == live_ids
    assert_ok(run_cli("verify", str(repo), "--deep", env=env))
    assert run_cli("pull", str(repo), DEAD, "-o", f"docker-archive:{tmp_path / 'x.tar'}", env=env).returncode == 1

    git_env = isolated_git_env(tmp_path)
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=git_env)
    run_git(["clone", "--quiet", str(repo), "work"], cwd=tmp_path, env={**git_env, "GIT_LFS_SKIP_SMUDGE": "1"})
    work = tmp_path / "work"
    run_git(["lfs", "pull"], cwd=work, env=git_env)
    assert run_git(["status", "--porcelain"], cwd=work, env=git_env).stdout == b""
    run_git(["lfs", "fsck"], cwd=work, env=git_env)
    for layer, oids in live.items():
        chunk_dir = work / layout.NEW.hex_path("layers", layer)
        joined = b"".join((chunk_dir / f"{i:06d}").read_bytes() for i in range(len(oids)))  # smudged: the chunks' bytes
        assert hashlib.sha256(joined).hexdigest() == layer

    again = run_cli("gc", str(repo), "--grace", "0", "--format", "json", env=env)
    assert_ok(again)
    assert json.loads(again.stdout)["lfs_deleted"] == 0 and {p.name for p in lfs_objects(repo)} == live_oids
