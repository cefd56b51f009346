"""``lfsreg history`` and ``lfsreg rollback`` across several pushes, on a local registry and over HTTP.

History is checked against ``git log`` of the registry branch (commit ids, times); rollback
against what ``pull`` then writes, and against the branch (one new commit, nothing on failure).
Files the target needs that the tree no longer holds (as after prune + gc) come back from
history; layers no longer stored refuse the rollback with nothing written; a tag moved by a
push racing the rollback (forced with a hook on the compare-and-swap) makes it give up.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, commit_count, lfs_objects, main_ref, run_cli
from dulwich.repo import Repo
from imageverify import FIXTURES

import lfsreg
from lfsreg.git.store import GitStore
from lfsreg.registry import layout, location

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
MULTI = f"oci:{FIXTURES / 'multi.oci'}:1.0"
APP_DIGEST = "sha256:49a8c9a5176f396834f02e40e62f5d61035a09baa06cdbb21fa4466fc2e00588"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))


def _push(where: str, source: str, tag: str, env: dict[str, str] | None = None) -> str:
    proc = run_cli("push", where, source, "--tag", tag, "--format", "json", env=env)
    assert_ok(proc)
    return json.loads(proc.stdout)["images"][0]["digest"]


def _history(where: str, image: str, env: dict[str, str] | None = None) -> dict:
    proc = run_cli("history", where, image, "--format", "json", env=env)
    assert_ok(proc)
    return json.loads(proc.stdout)


def _tag(where: str, name: str, tag: str, env: dict[str, str] | None = None) -> str | None:
    proc = run_cli("tags", where, name, "--format", "json", env=env)
    rows = json.loads(proc.stdout) if proc.returncode == 0 else []
    return next((r["digest"] for r in rows if r["tag"] == tag), None)


def _git_log(repo: Path) -> list[tuple[str, int]]:
    r = Repo(str(repo))
    return [(e.commit.id.decode(), e.commit.commit_time) for e in r.get_walker(include=[r.refs[b"refs/heads/main"]])]


def _pull_ok(where: str, image: str, tmp_path: Path, digest: str, env: dict[str, str] | None = None) -> None:
    out = tmp_path / f"pulled-{len(list(tmp_path.iterdir()))}"
    proc = run_cli("pull", where, image, "-o", f"oci:{out}", env=env)
    assert_ok(proc)
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]


def _three_versions(where: str, env: dict[str, str] | None = None) -> list[str]:
    """acme/x:1 names app, then tool, then multi; acme/x:2 is created and removed on the way."""
    first = _push(where, APP, "acme/x:1", env)
    second = _push(where, TOOL, "acme/x:1", env)
    _push(where, TOOL, "acme/x:2", env)
    assert_ok(run_cli("rm", where, "acme/x:2", env=env))
    third = _push(where, MULTI, "acme/x:1", env)
    return [first, second, third]


def test_history_lists_every_digest_with_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    first, second, third = _three_versions(str(repo))
    assert first == APP_DIGEST
    log = dict(_git_log(repo))
    found = _history(str(repo), "acme/x:1")
    assert found["truncated"] is False
    changes = found["changes"]
    assert [(c["action"], c["digest"], c["previous"]) for c in changes] == [
        ("moved", third, second),
        ("moved", second, first),
        ("created", first, None),
    ]
    for change in changes:
        assert change["commit"] in log
        assert change["time"].endswith("Z") and change["message"].startswith("push acme/x:1")
    # the commits are the ones that changed the tag, newest first, in git's order
    order = [c for c, _ in _git_log(repo)]
    assert [order.index(c["commit"]) for c in changes] == sorted(order.index(c["commit"]) for c in changes)
    # every tag of the name: acme/x:2's creation and removal are there too
    everything = _history(str(repo), "acme/x")["changes"]
    expected = [("1", "moved"), ("2", "removed"), ("2", "created"), ("1", "moved"), ("1", "created")]
    assert [(c["tag"], c["action"]) for c in everything] == expected
    text = run_cli("history", str(repo), "acme/x:1")
    assert_ok(text)
    assert text.stdout.splitlines()[0].split() == ["TIME", "TAG", "ACTION", "DIGEST", "COMMIT"]
    assert len(text.stdout.splitlines()) == 4 and third in text.stdout


def test_a_push_of_many_tags_names_twenty_in_its_subject_and_every_one_in_its_body(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    tags = [f"acme/m:t{i:02d}" for i in range(25)]
    assert_ok(run_cli("push", str(repo), APP, *(arg for tag in tags for arg in ("--tag", tag))))
    subject, _, body = Repo(str(repo))[main_ref(repo)].message.decode().partition("\n\n")
    assert subject == f"push {', '.join(tags[:20])} and 5 more"
    assert body.split() == [word for tag in tags for word in (tag, APP_DIGEST)]
    assert _history(str(repo), "acme/m:t24")["changes"][0]["message"] == subject


def test_rollback_by_steps_and_to_digest(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    first, second, third = _three_versions(str(repo))
    before = commit_count(repo)
    proc = run_cli("rollback", str(repo), "acme/x:1", "--format", "json")
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert (result["previous"], result["digest"]) == (third, second)
    assert commit_count(repo) == before + 1 and result["commit"] == main_ref(repo).decode()
    assert _tag(str(repo), "acme/x", "1") == second
    _pull_ok(str(repo), "acme/x:1", tmp_path, second)
    # the history now reads second, third, second, first: three steps back is first
    assert_ok(run_cli("rollback", str(repo), "acme/x:1", "--steps", "3"))
    assert _tag(str(repo), "acme/x", "1") == first
    assert_ok(run_cli("rollback", str(repo), "acme/x:1", "--to", third))
    assert _tag(str(repo), "acme/x", "1") == third
    assert_ok(run_cli("rollback", str(repo), "acme/x:1", "--to", first))
    _pull_ok(str(repo), "acme/x:1", tmp_path, first)
    # already there: nothing written
    head = main_ref(repo)
    proc = run_cli("rollback", str(repo), "acme/x:1", "--to", first)
    assert_ok(proc)
    assert "unchanged" in proc.stdout and main_ref(repo) == head
    # a removed tag comes back with the digest it named last
    assert_ok(run_cli("rollback", str(repo), "acme/x:2"))
    assert _tag(str(repo), "acme/x", "2") == second
    # the rollbacks are in the history
    assert _history(str(repo), "acme/x:1")["changes"][0]["message"] == f"rollback acme/x:1 to {first}"


def test_rollback_bad_requests_write_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    _three_versions(str(repo))
    head = main_ref(repo)
    assert_error(run_cli("rollback", str(repo), "acme/x:1", "--to", "sha256:" + "0" * 64), 1, "never named")
    assert_error(run_cli("rollback", str(repo), "acme/x:1", "--steps", "9"), 1, "cannot go back 9")
    assert_error(run_cli("rollback", str(repo), "acme/nope:1"), 1, "no history")
    assert_error(run_cli("rollback", str(repo), "acme/x:1", "--to", "sha256:abc"), 2, "invalid digest")
    proc = run_cli("rollback", str(repo), "acme/x:1", "--to", APP_DIGEST, "--steps", "1")
    assert proc.returncode == 2 and "not both" in proc.stderr
    assert_error(run_cli("history", str(repo), f"acme/x@{APP_DIGEST}"), 2, "not a digest")
    assert main_ref(repo) == head


def _drop_from_tree(repo: Path, prefixes: tuple[str, ...]) -> None:
    """Commit a tree without the files under ``prefixes`` that no tag needs (what gc leaves): here, all of them."""
    git = GitStore.open(str(repo))
    try:
        tip = git.head()
        snap = git.snapshot(tip)
        paths: list[str] = []
        stack = list(prefixes)
        while stack:
            p = stack.pop()
            for name, is_dir, _ in snap.listdir(p):
                (stack if is_dir else paths).append(f"{p}/{name}")
        keep = {layout.NEW.hex_path("blobs", _tag(str(repo), "acme/x", "1")[7:])}
        commit = git.make_commit(tip, {p: None for p in paths if p not in keep}, "drop")
        assert git.compare_and_swap(tip, commit)
    finally:
        git.close()


def test_rollback_restores_files_the_tree_no_longer_holds(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    first, _, _ = _three_versions(str(repo))
    _drop_from_tree(repo, ("layers", "diffids", "blobs"))
    proc = run_cli("rollback", str(repo), "acme/x:1", "--to", first, "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["restored_files"] == 8  # manifest, config, 3 layer pointers, their 3 diffids records
    _pull_ok(str(repo), "acme/x:1", tmp_path, first)


def test_rollback_refuses_when_layers_are_gone(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    first, _, _ = _three_versions(str(repo))
    for obj in lfs_objects(repo):
        if obj.name == "6d6f4da3" or obj.name.startswith("6d6f4da3"):  # L3, only in app
            obj.unlink()
    head = main_ref(repo)
    assert_error(run_cli("rollback", str(repo), "acme/x:1", "--to", first), 1, "no longer stored")
    assert main_ref(repo) == head


def test_rollback_gives_up_when_the_tag_moves_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "reg.git"
    first, second, _ = _three_versions(str(repo))
    swaps: list[bool] = []
    original = location.LocalBackend.swap
    inside = threading.local()

    def swap(self: location.LocalBackend, old: str | None, new: str) -> bool:
        if not getattr(inside, "interloper", False) and not swaps:
            inside.interloper = True
            try:
                with lfsreg.Registry(str(repo)) as reg:
                    reg.push([APP], tags=["acme/x:1"])  # the race: the tag moves before the rollback lands
            finally:
                inside.interloper = False
            swaps.append(original(self, old, new))
            return swaps[-1]
        return original(self, old, new)

    monkeypatch.setattr(location.LocalBackend, "swap", swap)
    proc = run_cli("rollback", str(repo), "acme/x:1", "--to", second)
    assert swaps == [False], "the rollback's first compare-and-swap should have lost the race"
    assert_error(proc, 1, "moved to")
    assert _tag(str(repo), "acme/x", "1") == first  # the racing push stands


@pytest.mark.interop
def test_history_and_rollback_over_http(git_http_server, git_http_repo, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFSREG_", "XDG_"))}
    env.update(LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password, LFSREG_CACHE=str(tmp_path / "c1"))
    url = git_http_repo.url
    first, second, third = _three_versions(url, env)
    # a fresh cache: its mirror is fetched shallow first, and history deepens it
    env["LFSREG_CACHE"] = str(tmp_path / "c2")
    assert_ok(run_cli("tags", url, env=env))
    mirrors = list((tmp_path / "c2" / "mirrors").iterdir())
    assert len(mirrors) == 1 and (mirrors[0] / "shallow").read_text().strip(), "the first fetch should be shallow"
    found = _history(url, "acme/x:1", env)
    assert found["truncated"] is False
    assert [c["digest"] for c in found["changes"]] == [third, second, first]
    assert {c["commit"] for c in found["changes"]} <= {c for c, _ in _git_log(git_http_repo.path)}
    proc = run_cli("rollback", url, "acme/x:1", "--steps", "2", env=env)
    assert_ok(proc)
    assert _tag(url, "acme/x", "1", env) == first
    assert (git_http_repo.path / "refs" / "heads" / "main").exists() or (git_http_repo.path / "packed-refs").exists()
    shutil.rmtree(tmp_path / "c2")  # the layers come from the server again
    _pull_ok(url, "acme/x:1", tmp_path, first, env)
