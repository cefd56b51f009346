"""``lfsreg config`` and the limits a push must stay within (lfsreg/registry/config.py, lfsreg/ops/limits.py).

A push over ``limits.storage`` is refused before anything is uploaded: the remote (git
http-backend + giftless) is byte-identical afterwards, its storage directory included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli, snapshot, tree_files

import lfsreg
from lfsreg.errors import LimitExceededError, NotARegistryError, UsageError
from lfsreg.ops.limits import PRESETS
from lfsreg.registry.config import parse_size

APP = "docker-archive:" + str(fixture("app.docker.tar"))
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))
GIB = 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [("10GiB", 10 * GIB), ("2GB", 2_000_000_000), ("500 MB", 500_000_000), ("1.5GiB", 3 * GIB // 2), ("123", 123), ("4kib", 4096)],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "10XB", "-1GB", "1e3"])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_config_set_list_unset_preset_reset(registry):
    repo = str(registry)
    assert_ok(proc := run_cli("config", repo))
    assert proc.stdout == ""
    assert_ok(run_cli("config", repo, "limits.storage", "10GiB"))
    proc = run_cli("config", repo, "limits.storage")
    assert_ok(proc)
    assert proc.stdout == f"{10 * GIB}\n"
    assert json.loads(tree_files(registry, "lfsreg-config.json")["lfsreg-config.json"]) == {"limits": {"storage": 10 * GIB}}
    assert_ok(run_cli("config", repo, "--preset", "github-free"))
    listing = run_cli("config", repo, "--format", "json")
    assert_ok(listing)
    free = PRESETS["github-free"][0]
    assert json.loads(listing.stdout) == {
        "limits.object": free.object,
        "limits.storage": free.storage,
        "limits.transfer": free.transfer,
        "preset": "github-free",
    }
    assert_ok(run_cli("config", repo, "--unset", "limits.transfer", "--unset", "preset"))
    assert set(lfsreg.Registry(repo).config()) == {"limits.object", "limits.storage"}
    text = run_cli("config", repo)
    assert_ok(text)
    assert text.stdout.splitlines() == ["limits.object=2000000000 (2GB)", f"limits.storage={10 * GIB} (10GiB)"]
    assert_ok(run_cli("config", repo, "--reset"))
    assert lfsreg.Registry(repo).config() == {}
    assert "lfsreg-config.json" not in tree_files(registry, "")
    missing = run_cli("config", repo, "limits.storage")
    assert missing.returncode == 1 and missing.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["limits.bogus", "1GB"], "unknown setting 'limits.bogus'"),
        (["limits.storage", "lots"], "'lots' is not a size"),
        (["--preset", "github-gold"], "unknown preset 'github-gold'"),
        (["preset", "github-free"], "unknown setting 'preset'"),
    ],
)
def test_bad_config_is_refused_and_nothing_written(registry, args, needle):
    before = snapshot(registry)
    assert_error(run_cli("config", registry, *args), 2, needle)
    assert snapshot(registry) == before


def test_list_presets(registry):
    proc = run_cli("config", registry, "--list-presets", "--format", "json")
    assert_ok(proc)
    rows = json.loads(proc.stdout)
    assert set(rows) >= {"github-free", "github-team", "github-enterprise", "gitlab-free", "bitbucket-free"}
    assert rows["github-free"]["storage"] == 10 * GIB and rows["github-enterprise"]["object"] == 5_000_000_000


def test_a_damaged_config_file_is_named_and_reset_repairs_it(registry):
    from lfsreg.git.store import GitStore

    git = GitStore.open(str(registry))
    head = git.head()
    assert git.compare_and_swap(head, git.make_commit(head, {"lfsreg-config.json": git.write_blob(b"[1, 2")}, "damage"))
    git.close()
    with pytest.raises(NotARegistryError, match=r"lfsreg-config\.json is damaged"):
        lfsreg.Registry(str(registry)).config()
    assert_error(run_cli("push", registry, APP), 1, "lfsreg-config.json is damaged")
    assert_ok(run_cli("config", registry, "--reset"))
    assert_ok(run_cli("push", registry, APP))


def _layers(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "lfs" / "objects").rglob("*") if p.is_file())


def test_a_local_push_over_the_storage_limit_is_refused_before_it_stores_anything(tmp_path):
    repo = tmp_path / "r.git"
    assert_ok(run_cli("push", repo, APP))
    used = _layers(repo)
    assert_ok(run_cli("config", repo, "limits.storage", str(used + 100)))
    before = snapshot(repo)
    proc = run_cli("push", repo, TOOL)
    line = assert_error(proc, 1, "over limits.storage", "nothing was uploaded")
    assert "lfsreg prune" in proc.stderr and "lfsreg gc" in proc.stderr
    assert proc.stdout.startswith("estimate: 1 LFS object(s) the host lacks")
    after = snapshot(repo)
    assert after[0] == before[0]
    assert {k: v for k, v in after[1].items() if k.startswith("lfs/")} == {k: v for k, v in before[1].items() if k.startswith("lfs/")}
    assert "B over limits.storage" in line
    with pytest.raises(LimitExceededError):
        lfsreg.Registry(str(repo)).push([TOOL])
    # a push that adds no new object costs nothing: it passes even at the limit
    assert_ok(run_cli("push", repo, APP, "--tag", "acme/app:again"))


def test_a_push_past_80_percent_warns(tmp_path):
    repo = tmp_path / "r.git"
    assert_ok(run_cli("push", repo, APP))
    dry = json.loads(run_cli("push", repo, TOOL, "--dry-run", "--format", "json").stdout)
    after = dry["estimate"]["billed_after"]
    assert_ok(run_cli("config", repo, "limits.storage", str(int(after / 0.9))))
    proc = run_cli("push", repo, TOOL)
    assert_ok(proc)
    assert proc.stderr.startswith("lfsreg: warning: after this push the registry's history references")
    assert "90 % of limits.storage" in proc.stderr
    assert "(90 %)" in proc.stdout.splitlines()[0]


@pytest.mark.interop
def test_a_remote_push_over_the_limit_leaves_the_remote_byte_identical(git_http_server, git_http_repo, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_")):
            monkeypatch.delenv(name)
    env = {
        **os.environ,
        "LFSREG_USERNAME": git_http_server.user,
        "LFSREG_PASSWORD": git_http_server.password,
        "LFSREG_CACHE": str(tmp_path / "cache"),
    }
    assert_ok(run_cli("push", git_http_repo.url, APP, env=env))
    assert_ok(run_cli("config", git_http_repo.url, "limits.storage", "12kB", env=env))
    assert git_http_repo.lfs_storage is not None
    git_before = snapshot(git_http_repo.path)
    lfs_before = sorted((p.name, p.stat().st_size) for p in git_http_repo.lfs_storage.rglob("*") if p.is_file())
    start = git_http_server.access_log.stat().st_size
    proc = run_cli("push", git_http_repo.url, TOOL, env=env)
    assert_error(proc, 1, "over limits.storage (12kB)")
    assert snapshot(git_http_repo.path) == git_before
    assert sorted((p.name, p.stat().st_size) for p in git_http_repo.lfs_storage.rglob("*") if p.is_file()) == lfs_before
    with open(git_http_server.access_log, "rb") as f:
        f.seek(start)
        sent = f.read().decode()
    assert "PUT " not in sent and "git-receive-pack" not in sent
