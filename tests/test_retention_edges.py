"""``history``, ``rollback``, ``prune`` and ``gc`` at their edges (issue 10; branch coverage of
ops/gc.py, ops/prune.py, ops/history.py): an empty repository, bad arguments through the API,
a registry made of one root commit, a gc that keeps losing its compare-and-swap, a history
window that covers everything, and trees another tool wrote oddly.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from conftest import lfs_objects, main_ref, run_cli, snapshot, tree_files
from gitenv import cli_env
from hostile import app_manifest, blob_path, digest_of, dumps, edit_registry, nested_indexes, tag_path
from imageverify import FIXTURES

import lfsreg
from lfsreg.errors import UsageError
from lfsreg.ops.prune import PrunePolicy
from lfsreg.registry import layout, location

APP = "acme/app:1.0"
DIGEST = app_manifest()[0]["digest"]


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "reg.git"
    _ok(run_cli("push", out, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", APP, env=_env(tmp_path)))
    return out


def test_an_empty_repository_has_nothing_to_collect_prune_or_list(tmp_path):
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    before = snapshot(bare)
    env = _env(tmp_path)
    gc = json.loads(_ok(run_cli("gc", str(bare), "--grace", "0", "--format", "json", env=env)).stdout)
    assert gc["commits_before"] == gc["commits_after"] == 0 and gc["commit"] is None and gc["lfs_deleted"] == 0
    prune = json.loads(_ok(run_cli("prune", str(bare), "--keep-last", "1", "--format", "json", env=env)).stdout)
    assert prune["pruned"] == [] and prune["commit"] is None
    history = run_cli("history", str(bare), "acme/app", env=env)
    assert history.returncode == 1 and history.stderr.strip() == f"lfsreg: error: {bare}: the registry is empty"
    assert snapshot(bare) == before


def test_bad_arguments_through_the_api_write_nothing(repo):
    before = snapshot(repo)
    with lfsreg.Registry(str(repo)) as reg:
        with pytest.raises(UsageError, match="not both"):
            reg.rollback(APP, to=DIGEST, steps=1)
        with pytest.raises(UsageError, match="--steps must be 1 or more"):
            reg.rollback(APP, steps=0)
        with pytest.raises(UsageError, match="--keep-last must be 0 or more"):
            reg.prune(PrunePolicy(keep_last=-1))
        with pytest.raises(UsageError, match="--older-than must not be negative"):
            reg.prune(PrunePolicy(older_than=-1.0))
        with pytest.raises(UsageError, match="must not be negative"):
            reg.gc(keep_history=-1.0)
    assert snapshot(repo) == before


def test_rollback_with_to_and_steps_is_one_usage_line(repo, tmp_path):
    before = snapshot(repo)
    proc = run_cli("rollback", str(repo), APP, "--to", DIGEST, "--steps", "1", env=_env(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == "lfsreg: error: give --to DIGEST or --steps N, not both"
    assert snapshot(repo) == before


def test_prune_dates_a_tag_set_in_the_root_commit(repo, tmp_path):
    """A registry made by ``copy`` is one commit without a parent: its tags were set then."""
    env = _env(tmp_path)
    dst = tmp_path / "copy.git"
    _ok(run_cli("copy", str(repo), str(dst), env=env))
    (root,) = subprocess.run(["git", "-C", str(dst), "rev-list", "main"], capture_output=True, text=True, check=True).stdout.split()
    when = int(
        subprocess.run(["git", "-C", str(dst), "show", "-s", "--format=%ct", root], capture_output=True, text=True, check=True).stdout
    )
    out = json.loads(_ok(run_cli("prune", str(dst), "--older-than", "0s", "--dry-run", "--format", "json", env=env)).stdout)
    (pruned,) = out["pruned"]
    assert (pruned["name"], pruned["tag"], pruned["digest"]) == ("acme/app", "1.0", DIGEST)
    assert pruned["set"] == datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main_ref(dst) == root.encode()


def test_history_ignores_a_tag_file_rewritten_with_the_same_digest(repo, tmp_path):
    env = _env(tmp_path)
    before = json.loads(_ok(run_cli("history", str(repo), APP, "--format", "json", env=env)).stdout)["changes"]
    edit_registry(repo, {tag_path("acme/app", "1.0"): DIGEST.encode()}, tmp_path)  # no newline: other bytes, same digest
    after = json.loads(_ok(run_cli("history", str(repo), APP, "--format", "json", env=env)).stdout)["changes"]
    assert after == before and len(after) == 1


def test_gc_gives_up_when_the_registry_keeps_moving(repo, tmp_path, monkeypatch):
    _ok(run_cli("rm", str(repo), APP, env=_env(tmp_path)))
    tip, objects = main_ref(repo), sorted(p.name for p in lfs_objects(repo))
    calls: list[str | None] = []

    def swap(self, old, new):  # someone else always got there first
        calls.append(old)
        return False

    monkeypatch.setattr(location.LocalBackend, "swap", swap)
    monkeypatch.setattr("lfsreg.ops.gc.MAX_ATTEMPTS", 3)
    proc = run_cli("gc", str(repo), "--grace", "0", env=_env(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[0].endswith("the registry kept changing; gc gave up after 3 attempts")
    assert len(calls) == 3
    assert main_ref(repo) == tip and sorted(p.name for p in lfs_objects(repo)) == objects  # nothing swapped or deleted


def test_gc_with_a_window_covering_all_history_rewrites_nothing(repo, tmp_path):
    env = _env(tmp_path)
    _ok(run_cli("push", repo, f"oci:{FIXTURES / 'tool.oci'}:2.0", "--tag", "acme/tool:2.0", env=env))
    tip = main_ref(repo)
    out = json.loads(_ok(run_cli("gc", str(repo), "--keep-history", "30d", "--grace", "0", "--format", "json", env=env)).stdout)
    assert out["squashed"] == 0 and out["commits_after"] == out["commits_before"] >= 2 and out["commit"] is None
    assert main_ref(repo) == tip


def test_gc_reads_past_junk_and_duplicate_pointers_under_layers(repo, tmp_path):
    """Another tool left a non-pointer and a second copy of a pointer under layers/: gc keeps every object."""
    env = _env(tmp_path)
    layer = json.loads(app_manifest()[1])["layers"][0]["digest"].split(":")[1]
    pointer = layout.NEW.hex_path("layers", layer)
    data = tree_files(repo, pointer)[pointer]
    edit_registry(repo, {"layers/sha256/zz/junk": b"not a pointer\n", "layers/sha256/zz/copy": data}, tmp_path)
    objects = sorted(p.name for p in lfs_objects(repo))
    _ok(run_cli("gc", str(repo), "--grace", "0", env=env))
    assert sorted(p.name for p in lfs_objects(repo)) == objects
    _ok(run_cli("verify", str(repo), "--deep", env=env))
    pulled = tmp_path / "pulled"
    _ok(run_cli("pull", str(repo), APP, "-o", f"oci:{pulled}", env=env))


def _broken(kind: str) -> dict[str, bytes | None]:
    """Files that break the registry in one way (``kind``), for :func:`edit_registry`."""
    manifest = json.loads(app_manifest()[1])
    if kind == "corrupt tag":
        return {tag_path("acme/bad", "1"): b"garbage\n"}
    if kind == "missing manifest":
        return {tag_path("acme/gone", "1"): ("sha256:" + "1" * 64 + "\n").encode()}
    if kind == "missing config":
        manifest["config"] = {**manifest["config"], "digest": "sha256:" + "2" * 64}
        data = dumps(manifest)
        return {tag_path("acme/nocfg", "1"): (digest_of(data) + "\n").encode(), blob_path(digest_of(data)): data}
    root, docs = nested_indexes(6, 1)
    return {tag_path("acme/deep", "1"): (root["digest"] + "\n").encode(), **{blob_path(digest_of(d)): d for d in docs}}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt tag", "tag file for acme/bad:1 is corrupt"),
        ("missing manifest", f"manifest sha256:{'1' * 64} is missing"),
        ("missing config", f"config sha256:{'2' * 64} of sha256:"),
        ("deep", "indexes nested more than 4 deep at sha256:"),
    ],
)
def test_gc_and_prune_refuse_a_broken_registry_untouched(repo, tmp_path, kind, message):
    _ok(run_cli("rm", str(repo), APP, env=_env(tmp_path)))  # an object gc could free, were it to go on
    edit_registry(repo, _broken(kind), tmp_path)
    before = snapshot(repo)
    for argv in (["gc", "--grace", "0"], ["prune", "--keep-last", "0"]):
        proc = run_cli(argv[0], str(repo), *argv[1:], env=_env(tmp_path))
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        first = proc.stderr.splitlines()[0]
        assert first.startswith(f"lfsreg: error: {repo}: ") and message in first, first
    assert snapshot(repo) == before


def test_gc_drops_a_damaged_diffid_record_and_a_stray_file_keeps_the_image(repo, tmp_path):
    env = _env(tmp_path)
    record = sorted(tree_files(repo, "diffids/"))[0]
    edit_registry(repo, {record: b"garbage\n", "repositories/README": b"not a name\n"}, tmp_path)
    out = json.loads(_ok(run_cli("gc", str(repo), "--grace", "0", "--format", "json", env=env)).stdout)
    assert out["live_layers"] == 3 and out["lfs_deleted"] == 0
    assert record not in tree_files(repo, "diffids/")  # only a shortcut: gone, the others kept
    assert len(tree_files(repo, "diffids/")) == 2
    _ok(run_cli("verify", str(repo), "--deep", env=env))
    _ok(run_cli("pull", str(repo), APP, "-o", f"oci:{tmp_path / 'pulled'}", env=env))
