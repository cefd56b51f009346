"""Registry format version 4: image names fanned out under ``repositories/`` (docs/format.md, "Tree" and "Versioning").

A registry created now keeps ``NAME``'s tags in ``repositories/<h0>/<h1>/<h2>/NAME/_tags`` (``h`` the
sha256 hex of the name), so no tree on the way to one name holds every name of a big namespace. A
version 3 registry keeps ``repositories/NAME/_tags`` for ever; both read and write alike; copy writes
the destination's paths; a reader that knows only version 3 refuses version 4 in one line; the
marker stays 4 through chunked layers and a restored ``.gitattributes``. Over HTTP with filters, a
cold pull of a name in a namespace of 2,000 names fetches the trees on its path and its bucket's
(a few entries), not the namespace.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from clirun import run_cli
from conftest import assert_ok, tree_files
from gitenv import cli_env
from hostile import edit_registry
from imageverify import FIXTURES
from peers.nginx import RepoLog
from test_partial_fetch import _path_objects  # the tip's fetch and every tree and file along paths

from lfsreg.digest import Digest
from lfsreg.registry import layout

APP = f"docker-archive:{FIXTURES / 'app.docker.tar'}"
TOOL = f"docker-archive:{FIXTURES / 'tool.docker.tar'}"
BASE = f"docker-archive:{FIXTURES / 'base.docker.tar'}"
HEX = "43a353c2287ae4a37e389ac7bcab7164f48cab2e676529c404a0c9e279fa22dd"
NAMES = 2000  # the big namespace of the HTTP test: ~0.5 names a bucket, 70 kB as one version 3 tree
PICK = "big/n1000"
PICK_TAG = "t1000"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _version(repo: Path) -> int:
    return json.loads(tree_files(repo, layout.MARKER)[layout.MARKER])["version"]


def _json(*argv: object, env: dict[str, str]) -> list[dict[str, object]]:
    proc = run_cli(*argv, "--format", "json", env=env)
    assert_ok(proc)
    return json.loads(proc.stdout)


def _tag_files(repo: Path) -> set[str]:
    return {p for p in tree_files(repo, f"{layout.REPOSITORIES}/") if f"/{layout.TAGS_DIR}/" in p}  # not the names' hints


def test_name_paths_of_each_version() -> None:
    v4, v3 = layout.NEW, layout.V3
    fan = hashlib.sha256(b"acme/app").hexdigest()[:3]
    assert (v4.version, fan) == (4, "5f8")
    assert v4.name_bucket("acme/app") == "repositories/5/f/8"
    assert v4.tag_path("acme/app", "1.0") == "repositories/5/f/8/acme/app/_tags/1.0"
    subject = Digest("sha256", HEX)
    assert v4.referrer_path("acme/app", subject, subject) == f"repositories/5/f/8/acme/app/_referrers/sha256/{HEX}/{HEX}"
    assert v4.referrers_base("acme/app") == "repositories/5/f/8/acme/app/_referrers/sha256"
    for lay in (v3, layout.V1, layout.layout_of(2)):
        assert lay.tag_path("acme/app", "1.0") == "repositories/acme/app/_tags/1.0"
        assert lay.name_bucket("acme/app") == "repositories" and lay.name_levels == 0
        assert lay.name_of("acme/app") == "acme/app"
    # a directory below repositories/ is a name's only where the name's hash puts it
    assert v4.name_of("5/f/8/acme/app") == "acme/app"
    for below in ("0/0/0/acme/app", "acme/app", "5/f/8", "5/f/8/", "", "5f8/x/acme/app", "5/f/8x/acme/app"):
        assert v4.name_of(below) is None, below
    assert v4.fan_entry("a") and not v4.fan_entry("A") and not v4.fan_entry("ab")
    # a partial mirror reads a name's bucket down to the name, then its _tags with their files (before: the name with two levels)
    assert v4.name_reads("acme/app") == [("repositories/5/f/8", 2), ("repositories/5/f/8/acme/app/_tags", 1)]
    assert v3.name_reads("acme/app") == [("repositories/acme/app", 2)]
    # digests keep version 3's paths
    assert v4.blob_path(subject) == v3.blob_path(subject) == f"blobs/sha256/4/3/a/{HEX}"
    assert layout.of_marker(layout.marker_bytes(4)) == v4 and layout.of_marker(layout.marker_bytes(3)) == v3
    assert layout.CREATABLE_VERSIONS == (1, 3, 4)


def test_versions_3_and_4_read_and_write_alike(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    old, new = tmp_path / "v3.git", tmp_path / "v4.git"
    assert_ok(run_cli("init", old, "--format-version", "3", env=env))
    assert_ok(run_cli("push", new, APP, env=env))  # the first push creates a version 4 registry
    assert_ok(run_cli("push", old, APP, env=env))
    for repo in (old, new):
        assert_ok(run_cli("push", repo, TOOL, env=env))
        assert_ok(run_cli("push", repo, BASE, "--tag", "acme/base:1", "--tag", "solo:1", env=env))
        assert_ok(run_cli("rm", repo, "acme/tool:2.0", env=env))
        assert_ok(run_cli("push", repo, TOOL, "--tag", "acme/tool:3", env=env))
        assert_ok(run_cli("gc", repo, "--grace", "0", env=env))
    assert (_version(old), _version(new)) == (3, 4)
    want = {("acme/app", "1.0"), ("acme/base", "1"), ("solo", "1"), ("acme/tool", "3")}
    assert _tag_files(old) == {layout.V3.tag_path(n, t) for n, t in want}
    assert _tag_files(new) == {layout.NEW.tag_path(n, t) for n, t in want}
    # the same answers from both: listings (an exact name reads its bucket only), pulls, verify
    for command, *rest in (["tags"], ["images"], ["images", "--image", "acme/app"], ["images", "--image", "acme/*"], ["tags", "solo"]):
        assert _json(command, old, *rest, env=env) == _json(command, new, *rest, env=env), (command, rest)
    assert [r["name"] for r in _json("images", new, "--image", "acme/app", env=env)] == ["acme/app"]
    for ref in ("acme/app:1.0", "acme/tool:3", "solo:1"):
        pulled = []
        for repo in (old, new):
            out = tmp_path / f"{repo.stem}-{ref.replace('/', '_').replace(':', '_')}.tar"
            assert_ok(run_cli("pull", repo, ref, "-o", f"docker-archive:{out}", env=env))
            pulled.append(out.read_bytes())
        assert pulled[0] == pulled[1], ref
    for repo in (old, new):
        assert_ok(run_cli("verify", repo, "--deep", env=env))
    # a name written where only version 3 keeps it (stock git, the old path) is not one of version 4's
    solo = layout.NEW.tag_path("solo", "1")
    edit_registry(new, {layout.V3.tag_path("acme/lost", "1"): tree_files(new, solo)[solo]}, tmp_path)
    assert "acme/lost" not in {r["name"] for r in _json("tags", new, env=env)}
    assert [r["name"] for r in _json("images", new, "--image", "acme/*", env=env)] == ["acme/app", "acme/base", "acme/tool"]
    # ... nor one in another name's bucket; verify names both places, where the listings say nothing
    misfiled = f"{layout.NEW.name_bucket('solo')}/acme/misfiled/{layout.TAGS_DIR}"
    assert layout.NEW.name_bucket("acme/misfiled") != layout.NEW.name_bucket("solo")
    edit_registry(new, {f"{misfiled}/1": tree_files(new, solo)[solo]}, tmp_path)
    assert "acme/misfiled" not in {r["name"] for r in _json("tags", new, env=env)}
    checked = run_cli("verify", new, env=env)
    assert checked.returncode == 1, checked.stderr
    strays = [line for line in checked.stdout.splitlines() + checked.stderr.splitlines() if "no pull or listing sees it" in line]
    assert len(strays) == 2 and "repositories/acme:" in strays[0] and f"{misfiled}:" in strays[1], checked


def test_copy_writes_version_4_paths_from_version_3_and_back(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    old, new, back = tmp_path / "old.git", tmp_path / "new.git", tmp_path / "back.git"
    assert_ok(run_cli("init", old, "--format-version", "3", env=env))
    assert_ok(run_cli("push", old, BASE, "--tag", "other/base:1", env=env))
    assert_ok(run_cli("push", old, APP, env=env))
    assert_ok(run_cli("copy", old, new, env=env))  # into nothing: a new registry, version 4
    assert_ok(run_cli("init", back, "--format-version", "3", env=env))
    assert_ok(run_cli("copy", new, back, env=env))
    assert (_version(old), _version(new), _version(back)) == (3, 4, 3)
    assert _tag_files(new) == {layout.NEW.tag_path("acme/app", "1.0"), layout.NEW.tag_path("other/base", "1")}
    assert tree_files(back, "") == tree_files(old, "")  # there and back: the very same tree
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    assert_ok(run_cli("pull", old, "acme/app:1.0", "-o", f"docker-archive:{a}", env=env))
    assert_ok(run_cli("pull", new, "acme/app:1.0", "-o", f"docker-archive:{b}", env=env))
    assert a.read_bytes() == b.read_bytes()


def test_a_reader_that_knows_version_3_refuses_version_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("push", repo, APP, env=env))
    head = _git(repo, "rev-parse", "main")
    monkeypatch.setattr(layout, "KNOWN_VERSION", 3)  # what every lfsreg before version 4 knows
    for argv in (["tags", repo], ["pull", repo, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'x.tar'}"], ["push", repo, TOOL]):
        proc = run_cli(*argv, env=env)
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[0] == f"lfsreg: error: {repo}: registry format version 4 is not supported by this lfsreg"
    assert _git(repo, "rev-parse", "main") == head
    assert not (tmp_path / "x.tar").exists()


# -- over HTTP: one name among 2,000 ------------------------------------------------------------


class _Sent(RepoLog):
    """What nginx logged for one repository since this was made: upload-pack POSTs and git bytes sent."""

    def git(self) -> tuple[int, int]:
        posts = sent = 0
        for line in self.new_lines():
            if "/info/lfs" in line:
                continue
            posts += '"POST ' in line and "/git-upload-pack " in line
            found = re.search(r'" \d{3} (\d+) ', line)
            sent += int(found.group(1)) if found else 0
        return posts, sent


@pytest.fixture(scope="module")
def namespaces(git_http_server, tmp_path_factory) -> dict[int, object]:
    """A version 3 and a version 4 registry on git http-backend (filters on): app, and 2,000 names ``big/nNNNN:tNNNN`` naming it."""
    out = {}
    for version in (3, 4):
        tmp = tmp_path_factory.mktemp(f"names-v{version}")
        repo = git_http_server.create_repo(f"names4/v{version}-{tmp.name}")
        env = cli_env(tmp, git_http_server)
        assert_ok(run_cli("init", repo.url, "--format-version", str(version), env=env))
        assert_ok(run_cli("push", repo.url, APP, env=env))
        lay = layout.layout_of(version)
        tag = tree_files(repo.path, lay.tag_path("acme/app", "1.0"))[lay.tag_path("acme/app", "1.0")]
        # a tag of its own each, so that no two names' directories are the same tree (which would compress to nothing)
        edit_registry(repo.path, {lay.tag_path(f"big/n{i:04d}", f"t{i}"): tag for i in range(NAMES)}, tmp)
        _git(repo.path, "config", "uploadpack.allowFilter", "true")
        out[version] = repo
    return out


def _objects(cache: Path) -> set[str]:
    out: set[str] = set()
    for mirror in (cache / "mirrors").glob("*.git"):
        out |= set(_git(mirror, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    return out


@pytest.mark.interop
def test_a_cold_pull_of_one_name_among_2000_fetches_its_path_and_bucket_only(namespaces, git_http_server, tmp_path: Path) -> None:
    sent, posts, pulled = {}, {}, {}
    for version, repo in namespaces.items():
        seen = _Sent(git_http_server, repo)
        out = tmp_path / f"v{version}.tar"
        cache = tmp_path / f"v{version}"
        assert_ok(run_cli("pull", repo.url, f"{PICK}:{PICK_TAG}", "-o", f"docker-archive:{out}", env=cli_env(cache, git_http_server)))
        posts[version], sent[version] = seen.git()
        pulled[version] = out.read_bytes()
        if version != 4:
            continue
        # what the server sent: the tip; the trees down to the name; its bucket's trees down to the names in it
        # (0.5 at 2,000 names, about 7 at 30,000: a tree entry each); _tags and its file; the image's files
        tip = _git(repo.path, "rev-parse", "main").strip()
        lay = layout.NEW
        digest = Digest.parse(_git(repo.path, "show", f"{tip}:{lay.tag_path(PICK, PICK_TAG)}").strip())
        manifest = json.loads(_git(repo.path, "show", f"{tip}:{lay.blob_path(digest)}"))
        config_path = lay.blob_path(Digest.parse(manifest["config"]["digest"]))
        config = json.loads(_git(repo.path, "show", f"{tip}:{config_path}"))
        image = [lay.blob_path(digest), config_path, *(lay.layer_path(Digest.parse(d["digest"])) for d in manifest["layers"])]
        image += [lay.diffid_path(Digest.parse(d)) for d in config["rootfs"]["diff_ids"]]
        bucket = lay.name_bucket(PICK)
        below = _git(repo.path, "ls-tree", "-r", "-d", "--name-only", f"{tip}:{bucket}").split()
        in_bucket = [f"{bucket}/{p}" for p in below if p.count("/") <= 1]
        allowed = _path_objects(repo.path, tip, [*image, lay.tag_path(PICK, PICK_TAG), *in_bucket])
        got = _objects(cache / "cache")
        assert got <= allowed, sorted(got - allowed)
        assert _git(repo.path, "rev-parse", f"{tip}:{lay.name_dir(PICK)}").strip() in got
        others = {_git(repo.path, "rev-parse", f"{tip}:{lay.name_dir(n)}").strip() for n in ("big/n0000", "big/n1999")}
        assert not (got & others) or lay.name_bucket("big/n0000") == bucket  # other buckets' names stay on the server
    assert pulled[3] == pulled[4]
    # version 3 sends the 2,000-entry namespace tree (about 70 kB); version 4 a few small trees for two more exchanges
    assert sent[4] * 4 < sent[3], sent
    assert posts[4] == posts[3] + 2, posts


@pytest.mark.interop
def test_without_filters_a_version_4_pull_is_the_same(namespaces, git_http_server, tmp_path: Path) -> None:
    repo = namespaces[4]
    filtered, whole = tmp_path / "filtered.tar", tmp_path / "whole.tar"
    assert_ok(
        run_cli("pull", repo.url, f"{PICK}:{PICK_TAG}", "-o", f"docker-archive:{filtered}", env=cli_env(tmp_path / "a", git_http_server))
    )
    _git(repo.path, "config", "--unset", "uploadpack.allowFilter")
    try:
        assert_ok(
            run_cli("pull", repo.url, f"{PICK}:{PICK_TAG}", "-o", f"docker-archive:{whole}", env=cli_env(tmp_path / "b", git_http_server))
        )
        tags = _json("tags", repo.url, PICK, env=cli_env(tmp_path / "c", git_http_server))
    finally:
        _git(repo.path, "config", "uploadpack.allowFilter", "true")
    assert whole.read_bytes() == filtered.read_bytes()
    assert [(t["name"], t["tag"]) for t in tags] == [(PICK, PICK_TAG)]


@pytest.mark.interop
def test_a_cold_push_and_tags_of_a_name_among_2000_read_little(namespaces, git_http_server, tmp_path: Path) -> None:
    sent = {}
    for version, repo in namespaces.items():
        seen = _Sent(git_http_server, repo)
        assert_ok(run_cli("push", repo.url, TOOL, "--tag", "big/new:1", env=cli_env(tmp_path / f"push{version}", git_http_server)))
        seen_tags = _Sent(git_http_server, repo)
        tags = _json("tags", repo.url, PICK, env=cli_env(tmp_path / f"tags{version}", git_http_server))
        assert [(t["name"], t["tag"]) for t in tags] == [(PICK, PICK_TAG)]
        sent[version] = (seen.git()[1] - seen_tags.git()[1], seen_tags.git()[1])
        lay = layout.layout_of(version)
        assert _git(repo.path, "show", f"main:{lay.tag_path('big/new', '1')}").startswith("sha256:")
    assert sent[4][0] * 4 < sent[3][0], sent  # the push: without the namespace tree
    assert sent[4][1] * 4 < sent[3][1], sent  # tags REPO NAME: likewise


@pytest.mark.interop
def test_a_cold_glob_listing_reads_every_bucket_in_as_many_exchanges_as_version_3(namespaces, git_http_server, tmp_path: Path) -> None:
    """A glob with wildcards cannot be pruned by a hash: the fan-out levels and the namespaces' directories of
    every bucket come in one exchange (one a level: three more than version 3), the same listing either way."""
    posts, listed = {}, {}
    for version, repo in namespaces.items():
        seen = _Sent(git_http_server, repo)
        listed[version] = _json("images", repo.url, "--image", "big/n100*", env=cli_env(tmp_path / f"v{version}", git_http_server))
        posts[version] = seen.git()[0]
    assert [r["name"] for r in listed[4]] == [f"big/n{i:04d}" for i in range(1000, 1010)]
    assert listed[3] == listed[4]
    assert posts[4] == posts[3], posts
