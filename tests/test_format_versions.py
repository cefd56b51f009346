"""Registry format versions 1 to 3 side by side (docs/format.md, "Tree" and "Versioning").

A registry created now is version 3 (three one-digit shard levels under ``blobs/``, ``layers/``,
``diffids/``); a version 1 registry (``lfsreg init --format-version 1``, or any registry an
older lfsreg made) keeps its two-digit shards and its version through push, delete, gc and
chunked layers (which make it 2); copy writes the destination's layout whatever the source's;
a reader that knows only version 2 refuses version 3 in one line and writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from clirun import run_cli
from conftest import assert_error, assert_ok, tree_files
from gitenv import cli_env
from imageverify import FIXTURES
from test_chunked_layers import MIB, big_archive
from test_partial_exchanges import IMAGES, NEW, PULL, _filters, _Requests

from lfsreg.digest import Digest
from lfsreg.registry import layout

APP = f"docker-archive:{FIXTURES / 'app.docker.tar'}"
TOOL = f"docker-archive:{FIXTURES / 'tool.docker.tar'}"
BASE = f"docker-archive:{FIXTURES / 'base.docker.tar'}"
HEX = "43a353c2287ae4a37e389ac7bcab7164f48cab2e676529c404a0c9e279fa22dd"


def _version(repo: Path) -> int:
    return json.loads(tree_files(repo, layout.MARKER)[layout.MARKER])["version"]


def _digest_paths(repo: Path) -> list[str]:
    return [p for p in tree_files(repo, "") if p.split("/", 1)[0] in layout.KINDS]


def _all_in(repo: Path, lay: layout.Layout) -> None:
    """Every file under blobs/, layers/, diffids/ is where ``lay`` puts its digest (a chunk: under its layer's path)."""
    paths = _digest_paths(repo)
    assert paths
    for path in paths:
        found = lay.digest_file(path)
        assert found is not None, path
        kind, digest = found
        assert path in (lay.path(kind, digest), *(lay.chunk_path(digest, i) for i in range(10))), path


def _pulled(repo: Path | str, ref: str, out: Path, env: dict[str, str]) -> bytes:
    assert_ok(run_cli("pull", str(repo), ref, "-o", f"docker-archive:{out}", env=env))
    return out.read_bytes()


def test_each_version_has_its_paths() -> None:
    digest = Digest("sha256", HEX)
    assert layout.NEW.version == layout.NEW_VERSION == layout.KNOWN_VERSION == 4
    assert layout.NEW.blob_path(digest) == f"blobs/sha256/4/3/a/{HEX}"
    assert layout.NEW.layer_path(digest) == f"layers/sha256/4/3/a/{HEX}"
    assert layout.NEW.chunk_path(digest, 1) == f"layers/sha256/4/3/a/{HEX}/000001"
    assert layout.NEW.diffid_path(digest) == f"diffids/sha256/4/3/a/{HEX}"
    assert layout.NEW.shard_dirs("blobs", HEX) == ["blobs/sha256", "blobs/sha256/4", "blobs/sha256/4/3", "blobs/sha256/4/3/a"]
    for lay in (layout.NEW, layout.V1, layout.layout_of(2)):
        assert lay.shard_dir("diffids", HEX) == "/".join(["diffids", "sha256", *lay.shards(HEX)])
    for version in (1, 2):
        lay = layout.layout_of(version)
        assert lay.blob_path(digest) == f"blobs/sha256/43/{HEX}"
        assert lay.chunk_path(digest, 0) == f"layers/sha256/43/{HEX}/000000"
    assert layout.V1.chunked() == layout.layout_of(2) and layout.V1.chunked_marker() == {layout.MARKER: layout.marker_bytes(2)}
    assert layout.NEW.chunked() == layout.NEW and layout.NEW.chunked_marker() == {}
    # paths of one layout are not files of another
    assert layout.NEW.digest_file(f"blobs/sha256/43/{HEX}") is None
    assert layout.V1.digest_file(f"blobs/sha256/4/3/a/{HEX}") is None
    assert layout.NEW.digest_file(f"blobs/sha256/4/3/b/{HEX}") is None
    assert layout.NEW.digest_file(f"layers/sha256/4/3/a/{HEX}/000002") == ("layers", digest)
    assert layout.NEW.digest_file(f"blobs/sha256/4/3/a/{HEX}/000002") is None
    # history's trees: the marker names the layout; none, or a damaged one: version 1's
    assert layout.of_marker(layout.marker_bytes(3)) == layout.V3 and layout.of_marker(layout.marker_bytes(4)) == layout.NEW
    assert layout.of_marker(layout.marker_bytes(2)).widths == (2,)
    assert layout.of_marker(None) == layout.of_marker(b"junk") == layout.V1


def test_a_new_registry_is_version_3_and_a_version_1_registry_stays_version_1(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    new, old = tmp_path / "new.git", tmp_path / "old.git"
    assert_ok(run_cli("push", new, APP, env=env))  # the first push into nothing creates the registry
    assert_ok(run_cli("init", old, "--format-version", "1", env=env))
    assert _version(new) == layout.NEW_VERSION and _version(old) == 1
    for repo in (new, old):
        for source in (APP, TOOL, BASE):
            assert_ok(run_cli("push", repo, source, env=env))
        assert_ok(run_cli("rm", repo, "acme/tool:2.0", env=env))
        assert_ok(run_cli("gc", repo, "--grace", "0", env=env))
    assert _version(new) == layout.NEW_VERSION and _version(old) == 1
    _all_in(new, layout.NEW)
    _all_in(old, layout.V1)
    # the same images, the same files: only their paths differ
    assert sorted(p.rsplit("/", 1)[1] for p in _digest_paths(new)) == sorted(p.rsplit("/", 1)[1] for p in _digest_paths(old))
    assert _pulled(new, "acme/app:1.0", tmp_path / "a.tar", env) == _pulled(old, "acme/app:1.0", tmp_path / "b.tar", env)
    assert_ok(run_cli("verify", old, "--deep", env=env))
    # a chunked layer makes version 1 a version 2, its chunks under the two-digit shard; version 3 stays 3
    big = tmp_path / "big.docker.tar"
    big_archive(big, [int(1.5 * MIB)], "acme/big:1")
    for repo in (new, old):
        assert_ok(run_cli("config", repo, "limits.object", str(MIB), env=env))
        assert_ok(run_cli("push", repo, f"docker-archive:{big}", env=env))
    assert _version(new) == layout.NEW_VERSION and _version(old) == 2
    _all_in(new, layout.NEW)
    _all_in(old, layout.V1)
    assert any(p.endswith("/000001") for p in _digest_paths(old))
    assert _pulled(new, "acme/big:1", tmp_path / "c.tar", env) == _pulled(old, "acme/big:1", tmp_path / "d.tar", env)
    assert_ok(run_cli("verify", old, "--deep", env=env))
    assert_ok(run_cli("verify", new, "--deep", env=env))


def test_copy_writes_the_destinations_layout(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    old, new, back = tmp_path / "old.git", tmp_path / "new.git", tmp_path / "back.git"
    assert_ok(run_cli("init", old, "--format-version", "1", env=env))
    assert_ok(run_cli("push", old, BASE, env=env))  # a diffids record (zstd layer)
    assert_ok(run_cli("push", old, APP, env=env))
    assert_ok(run_cli("copy", old, new, env=env))  # into nothing: a new registry, version 3
    assert_ok(run_cli("init", back, "--format-version", "1", env=env))
    assert_ok(run_cli("copy", new, back, env=env))
    assert (_version(old), _version(new), _version(back)) == (1, layout.NEW_VERSION, 1)
    _all_in(new, layout.NEW)
    _all_in(back, layout.V1)
    assert tree_files(back, "") == tree_files(old, "")  # there and back: the very same tree
    assert any(p.startswith("diffids/") for p in _digest_paths(new))
    assert _pulled(old, "acme/app:1.0", tmp_path / "a.tar", env) == _pulled(new, "acme/app:1.0", tmp_path / "b.tar", env)


def test_a_reader_that_knows_version_2_refuses_version_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("push", repo, APP, env=env))
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True, check=True).stdout
    monkeypatch.setattr(layout, "KNOWN_VERSION", 2)  # what every lfsreg before version 3 knows
    for argv in (["images", repo], ["pull", repo, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'x.tar'}"], ["push", repo, TOOL]):
        proc = run_cli(*argv, env=env)
        assert proc.returncode == 1
        assert (
            proc.stderr.splitlines()[0]
            == f"lfsreg: error: {repo}: registry format version {layout.NEW_VERSION} is not supported by this lfsreg"
        )
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True, check=True).stdout == head
    assert not (tmp_path / "x.tar").exists()


def test_init_creates_only_versions_it_writes(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert_error(run_cli("init", tmp_path / "a.git", "--format-version", "2", env=env), 2, "--format-version")
    assert not (tmp_path / "a.git").exists()
    assert_ok(run_cli("init", tmp_path / "b.git", env=env))
    assert _version(tmp_path / "b.git") == layout.NEW_VERSION


def test_concurrent_pushers_into_a_version_3_registry_lose_nothing(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("init", repo, env=env))
    sources = [APP, TOOL, BASE, APP]
    results: list[object] = [None] * len(sources)

    def push(i: int) -> None:
        results[i] = run_cli("push", repo, sources[i], "--tag", f"jobs/push:{i}", env=env, spawn=True)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for proc in results:
        assert_ok(proc)  # type: ignore[arg-type]
    tags = json.loads(run_cli("tags", repo, "--format", "json", env=env).stdout)
    assert {f"{t['name']}:{t['tag']}" for t in tags} == {f"jobs/push:{i}" for i in range(len(sources))}
    assert _version(repo) == layout.NEW_VERSION
    _all_in(repo, layout.NEW)
    assert_ok(run_cli("verify", repo, env=env))


@pytest.mark.interop
def test_a_version_1_registry_over_http_keeps_its_paths_and_exchanges(git_http_server, tmp_path: Path) -> None:
    """Partial fetch reads a version 1 registry level by level as before: a cold pull 4 upload-pack POSTs
    (the tip, the name's two levels, the files its hints name; without hints 9, version 4: 17,
    tests/test_partial_exchanges.py), a push whose layer is stored 4 (version 4: 7)."""
    repo = git_http_server.create_repo(f"versions/v1-{tmp_path.name}")
    env = cli_env(tmp_path, git_http_server)
    assert_ok(run_cli("init", repo.url, "--format-version", "1", env=env))
    for tag, source in IMAGES.items():
        assert_ok(run_cli("push", repo.url, source, "--tag", tag, env=env))
    _filters(repo.path, True)
    seen = _Requests(git_http_server, repo)
    out = tmp_path / "pulled.tar"
    assert_ok(run_cli("pull", repo.url, PULL, "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "pull", git_http_server)))
    assert seen.git() == {"refs": 1, "upload-pack": 4, "receive-pack": 0}
    seen = _Requests(git_http_server, repo)
    assert_ok(run_cli("push", repo.url, NEW[1], "--tag", NEW[0], env=cli_env(tmp_path / "push", git_http_server)))
    assert seen.git() == {"refs": 1, "upload-pack": 4, "receive-pack": 2}
    assert _version(repo.path) == 1
    _all_in(repo.path, layout.V1)
    local = tmp_path / "local.git"  # the same image from a new (version 4) registry: the same archive
    assert_ok(run_cli("copy", repo.url, local, PULL, env=env))
    assert _version(local) == layout.NEW_VERSION
    assert _pulled(local, PULL, tmp_path / "local.tar", env) == out.read_bytes()
