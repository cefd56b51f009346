"""``lfsreg du`` on registries edited behind lfsreg's back, and with a stale or unwritable memo
(issue 10; branch coverage of ops/walk.py).

Expected sizes come from the fixture's own manifest (tests/hostile.py), not from lfsreg.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from hostile import _git, app_manifest, blob_path, digest_of, edit_registry, nested_indexes, tag_path
from imageverify import FIXTURES

from lfsreg.registry import layout

APP_BYTES = sum(layer["size"] for layer in json.loads(app_manifest()[1])["layers"])


def _env(tmp: Path, cache: Path | None = None) -> dict[str, str]:
    return cli_env(tmp, LFSREG_CACHE=str(cache or tmp / "cache"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "reg.git"
    proc = run_cli("push", out, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return out


def _du(repo: Path, env: dict[str, str], code: int = 0) -> dict:
    proc = run_cli("du", str(repo), "--format", "json", env=env)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_damaged_names_are_listed_and_the_rest_is_counted(repo, tmp_path):
    root, docs = nested_indexes(6, 1)
    edit_registry(
        repo,
        {
            "repositories/README": b"a file among the names\n",  # not a name: ignored
            f"{layout.NEW.tags_dir('acme/app')}/old/x": b"a directory among the tags\n",  # not a tag: ignored
            "layers/sha256/zz/notapointer": b"hello\n",  # not a pointer: not counted
            f"{layout.NEW.tags_dir('acme/bad')}/1": b"garbage\n",
            tag_path("acme/deep", "1"): (root["digest"] + "\n").encode(),
            **{blob_path(digest_of(d)): d for d in docs},
        },
        tmp_path,
    )
    out = _du(repo, _env(tmp_path), code=1)
    assert [(t["name"], t["tag"], t["size"]) for t in out["tags"]] == [("acme/app", "1.0", APP_BYTES)]
    assert out["registry"]["live_bytes"] == out["registry"]["history_bytes"] == APP_BYTES
    bad = {(u["name"], u["tag"]): u["error"] for u in out["unreadable"]}
    assert set(bad) == {("acme/bad", None), ("acme/deep", "1")}
    assert bad[("acme/bad", None)].endswith("tag file for acme/bad:1 is corrupt")
    assert "indexes nested more than 4 deep" in bad[("acme/deep", "1")]
    text = run_cli("du", str(repo), env=_env(tmp_path, tmp_path / "cache2"))  # no memo: the pointer is read again
    assert text.returncode == 1 and "notapointer is not an LFS pointer" in text.stderr
    assert len([line for line in text.stderr.splitlines() if line.startswith("lfsreg: error:")]) == 2


def test_a_merge_commit_counts_each_commit_once(repo, tmp_path):
    """History with a merge (another tool's): the commit both parents reach is read once."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    before = _du(repo, _env(tmp_path))
    edit_registry(repo, {f"{layout.NEW.tags_dir('acme/app')}/1.1": (app_manifest()[0]["digest"] + "\n").encode()}, tmp_path)
    merge = _git(repo, "commit-tree", "main^{tree}", "-p", "main", "-p", "main~1", "-m", "merge", env=env)
    _git(repo, "update-ref", "refs/heads/main", merge, env=env)
    out = _du(repo, _env(tmp_path))
    assert out["registry"]["commits"] == before["registry"]["commits"] + 2
    assert out["registry"]["history_bytes"] == APP_BYTES and out["registry"]["history_complete"]
    assert sorted(t["tag"] for t in out["tags"]) == ["1.0", "1.1"]


def test_a_memo_of_another_version_is_not_trusted(repo, tmp_path):
    cache = tmp_path / "cache"
    first = _du(repo, _env(tmp_path, cache))
    memos = sorted((cache / "du").glob("*.json"))
    assert memos, "du keeps a memo in the cache"
    for path in memos:
        data = json.loads(path.read_text())
        text = json.dumps({**data, "version": 999}).replace(str(APP_BYTES), "1").replace("6481", "7")
        path.write_text(text)
    assert _du(repo, _env(tmp_path, cache)) == first


def test_an_unwritable_memo_costs_nothing_but_time(repo, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory would be\n")
    out = _du(repo, _env(tmp_path, blocker / "cache"))
    assert out["registry"]["live_bytes"] == APP_BYTES
    assert blocker.is_file()
