"""``lfsreg du``: sizes per tag and image, live and billed bytes, from git alone (lfsreg/ops/usage.py, walk.py).

Expected numbers are computed here independently: from the LFS pointer files in the tree of
every commit (read with dulwich), not from lfsreg's code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from dulwich.repo import Repo

import lfsreg
from lfsreg.registry import layout

APP = "docker-archive:" + str(fixture("app.docker.tar"))  # acme/app:1.0, shares its base layer with tool
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))  # acme/tool:2.0
MULTI = f"oci:{fixture('multi.oci')}:1.0"


def _pointers(repo: Path, commit: bytes) -> dict[str, int]:
    """oid -> size of the pointers under layers/ at ``commit``."""
    r = Repo(str(repo))
    out = {}
    for entry in r.object_store.iter_tree_contents(r[commit].tree):
        if entry.path.startswith(b"layers/"):
            fields = dict(line.split(" ", 1) for line in r[entry.sha].as_raw_string().decode().splitlines())
            out[fields["oid"].split(":")[1]] = int(fields["size"])
    return out


def _history(repo: Path) -> dict[str, int]:
    r = Repo(str(repo))
    out: dict[str, int] = {}
    for walk in r.get_walker(include=[r.refs[b"refs/heads/main"]]):
        out.update(_pointers(repo, walk.commit.id))
    return out


def _image_layers(repo: Path, ref: str) -> dict[str, int]:
    info = lfsreg.Registry(str(repo)).inspect(ref)
    images = info.get("images") or [info]
    return {layer["digest"].split(":")[1]: layer["size"] for image in images for layer in image.get("layers", [])}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_sizes_per_tag_and_image_and_the_registry(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.push([TOOL])
    reg.push([MULTI], tags=["acme/multi:1.0"])
    reg.push([APP], tags=["acme/app:latest"])
    app, tool, multi = (_image_layers(registry, r) for r in ("acme/app:1.0", "acme/tool:2.0", "acme/multi:1.0"))
    shared = set(app) & set(tool)
    assert shared, "fixtures: app and tool share their base layer"
    u = reg.du()
    rows = {(t.name, t.tag): t for t in u.tags}
    assert set(rows) == {("acme/app", "1.0"), ("acme/app", "latest"), ("acme/tool", "2.0"), ("acme/multi", "1.0")}
    # two tags of one image: each holds nothing alone
    assert rows[("acme/app", "1.0")].size == sum(app.values())
    assert rows[("acme/app", "1.0")].unique == 0 and rows[("acme/app", "latest")].unique == 0
    assert rows[("acme/tool", "2.0")].unique == sum(s for o, s in tool.items() if o not in app and o not in multi)
    assert rows[("acme/tool", "2.0")].shared == sum(s for o, s in tool.items() if o in app or o in multi)
    assert rows[("acme/multi", "1.0")].size == sum(multi.values())  # every platform of an index
    images = {i.name: i for i in u.images}
    assert images["acme/app"].tags == 2
    assert images["acme/app"].unique == sum(s for o, s in app.items() if o not in tool and o not in multi)
    live = {**app, **tool, **multi}
    assert (u.live_bytes, u.live_objects) == (sum(live.values()), len(live))
    assert u.history_bytes == sum(_history(registry).values()) == u.live_bytes
    assert u.commits == 5 and u.history_complete
    objects_dir = sum(f.stat().st_size for f in (registry / "objects").rglob("*") if f.is_file())
    assert u.git_bytes == objects_dir


def test_untagged_layers_stay_billed_until_history_drops_them(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.push([TOOL])
    tool_only = {o: s for o, s in _image_layers(registry, "acme/tool:2.0").items() if o not in _image_layers(registry, "acme/app:1.0")}
    before = reg.du()
    reg.remove(["acme/tool:2.0"])
    after = reg.du()
    assert after.live_bytes == before.live_bytes - sum(tool_only.values())
    assert after.history_bytes == before.history_bytes == sum(_history(registry).values())
    assert [(t.name, t.tag, t.unique) for t in after.tags] == [("acme/app", "1.0", after.live_bytes)]


def test_globs_select_rows_not_totals(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.push([TOOL])
    everything = reg.du()
    only = reg.du(image_globs=["acme/t*"])
    assert [(t.name, t.tag) for t in only.tags] == [("acme/tool", "2.0")]
    assert [i.name for i in only.images] == ["acme/tool"]
    assert only.tags[0] == next(t for t in everything.tags if t.name == "acme/tool")  # unique still against every tag
    assert (only.live_bytes, only.history_bytes) == (everything.live_bytes, everything.history_bytes)
    assert reg.du(tag_globs=["9*"]).tags == []


def test_the_memo_gives_the_same_answer_and_a_damaged_one_is_ignored(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    first = reg.du()
    memos = sorted((cache / "du").glob("*.json"))
    assert [m.name.split(".", 1)[1] for m in memos] == ["history.json", "live.json"]
    assert reg.du() == first
    reg.push([TOOL])  # new trees: read; the old ones come from the memo
    third = reg.du()
    assert third.live_objects > first.live_objects and third.commits == first.commits + 1
    for memo in memos:
        memo.write_text('{"version": 1, "dirs": [1, 2], "manifests": {')
    assert reg.du() == third
    for memo in memos:
        memo.write_text(json.dumps({"version": 1, "manifests": {}, "dirs": {}, "layers": {}, "roots": {}, "commits": {}}))
    assert reg.du() == third


def test_a_push_leaves_the_du_memo_alone(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.du()
    live = next((cache / "du").glob("*.live.json"))
    before = live.read_bytes()
    reg.push([TOOL])  # the push's estimate reads and writes only the history memo
    assert live.read_bytes() == before


def test_cli_table_json_and_summary(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.push([TOOL])
    proc = run_cli("du", registry)
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "SIZE", "UNIQUE", "SHARED"]
    assert [line.split()[:2] for line in lines[1:3]] == [["acme/app", "1.0"], ["acme/tool", "2.0"]]
    assert any(line.startswith("billed LFS storage") for line in lines)
    proc = run_cli("du", registry, "--format", "json")
    assert_ok(proc)
    data = json.loads(proc.stdout)
    u = reg.du()
    assert data["registry"]["history_bytes"] == u.history_bytes and data["registry"]["git_bytes"] > 0
    assert [t["tag"] for t in data["tags"]] == ["1.0", "2.0"]
    summary = run_cli("du", registry, "-s")
    assert_ok(summary)
    assert "REPOSITORY" not in summary.stdout and "history references" in summary.stdout
    by_image = run_cli("du", registry, "--by", "image")
    assert_ok(by_image)
    assert by_image.stdout.splitlines()[0].split() == ["REPOSITORY", "TAGS", "SIZE", "UNIQUE", "SHARED"]


def test_a_damaged_tag_is_named_and_the_rest_counted(registry, cache):
    reg = lfsreg.Registry(str(registry))
    reg.push([APP])
    reg.push([TOOL])
    repo = Repo(str(registry))
    # point acme/tool:2.0's tag file at a manifest the registry does not hold, in a new commit
    from lfsreg.git.store import GitStore

    git = GitStore.open(str(registry))
    head = git.head()
    blob = git.write_blob(b"sha256:" + b"0" * 64 + b"\n")
    commit = git.make_commit(head, {f"{layout.NEW.tags_dir('acme/tool')}/2.0": blob}, "damage")
    assert git.compare_and_swap(head, commit)
    git.close()
    repo.close()
    proc = run_cli("du", registry)
    assert proc.returncode == 1
    assert "acme/app" in proc.stdout and "acme/tool" not in proc.stdout.split("\n\n")[0]
    assert proc.stderr.startswith("lfsreg: error: acme/tool:2.0: ") and "is missing" in proc.stderr


def test_not_a_registry_and_an_empty_one(tmp_path, registry, cache):
    assert_ok(run_cli("du", registry))
    u = lfsreg.Registry(str(registry)).du()
    assert (u.live_bytes, u.history_bytes, u.tags) == (0, 0, [])
    proc = run_cli("du", tmp_path / "nothing.git")
    assert proc.returncode == 1 and "no such registry" in proc.stderr


@pytest.mark.interop
def test_a_remote_shallow_mirror_is_deepened_for_history(git_http_server, git_http_repo, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "pusher"))
    pusher = lfsreg.Registry(git_http_repo.url)
    pusher.push([APP])
    pusher.push([TOOL])
    pusher.remove(["acme/tool:2.0"])
    pusher.close()
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "reader"))
    reader = lfsreg.Registry(git_http_repo.url)
    assert [t.tag for t in reader.tags()] == ["1.0"]  # a first fetch: depth 1
    mirror = next((tmp_path / "reader" / "mirrors").glob("*.git"))
    assert (mirror / "shallow").read_text().strip()
    u = reader.du()
    assert u.commits == 3 and u.history_complete
    assert u.history_bytes == sum(_history(git_http_repo.path).values()) > u.live_bytes
    assert not (mirror / "shallow").exists() or not (mirror / "shallow").read_text().strip()
