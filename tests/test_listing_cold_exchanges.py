"""What a cold listing of a remote registry asks the server for, counted on stock git http-backend (issue 13 item 2).

``tags REPO NAME`` walks to the name's directory a level an exchange and takes it with its
``_tags`` and tag files in one. A listing of the whole registry takes ``repositories/`` whole
in one exchange (``tags``), and ``blobs/`` whole in one more (``images``): never ``layers/`` or
``diffids/``, never a level at a time. After a push, the next listing's whole fetches name the
trees the mirror holds whole (``have``), so the server sends only what the push changed. The
mirror holds exactly what the server sent, so its objects are the count of what was fetched;
every answer equals the warm one and a local read of the same repository.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from clirun import run_cli
from gitenv import cli_env
from imageverify import FIXTURES
from peers.nginx import RepoLog

from lfsreg.registry import layout

IMAGES = {
    "acme/app:1.0": f"oci:{FIXTURES / 'app.oci'}:1.0",
    "acme/app:latest": f"oci:{FIXTURES / 'app.oci'}:1.0",
    "acme/tool:2.0": f"oci:{FIXTURES / 'tool.oci'}:2.0",
    "other/base:1": f"docker-archive:{FIXTURES / 'base.docker.tar'}",
}
NEW = ("acme/zstd:1.0", f"oci:{FIXTURES / 'app-zstd.oci'}:1.0")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def registry(git_http_server, tmp_path_factory) -> object:
    """Four tags of three images on git http-backend with ``uploadpack.allowFilter``.

    Written by a local push: no LFS upload, and a listing reads no layer.
    """
    tmp = tmp_path_factory.mktemp("cold-listing-src")
    repo = git_http_server.create_repo(f"coldlist/reg-{tmp.name}")
    env = cli_env(tmp, git_http_server)
    for tag, source in IMAGES.items():
        proc = run_cli("push", str(repo.path), source, "--tag", tag, env=env)
        assert proc.returncode == 0, proc.stderr
    _git(repo.path, "config", "uploadpack.allowFilter", "true")
    return repo


class _Requests(RepoLog):
    """The git requests nginx logged for one repository from when this was made: counts and body bytes."""

    def seen(self) -> tuple[dict[str, int], int]:
        counts = {"refs": 0, "upload-pack": 0, "other": 0}
        sent = 0
        for line in self.new_lines():
            if re.search(r'"GET [^ ]*/info/refs\?service=git-upload-pack ', line):
                counts["refs"] += 1
            elif '"POST ' in line and "/git-upload-pack " in line:
                counts["upload-pack"] += 1
            else:
                counts["other"] += 1
            found = re.search(r'" \d{3} (\d+) ', line)
            sent += int(found.group(1)) if found else 0
        return counts, sent


def _mirror_objects(cache: Path) -> set[str]:
    out: set[str] = set()
    for mirror in (cache / "mirrors").glob("*.git"):
        out |= set(_git(mirror, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    return out


def _tip_objects(repo: Path, tip: str) -> set[str]:
    """What the fetch of the tip brings: the commit, its root tree and the root's entries."""
    return {tip, _git(repo, "rev-parse", f"{tip}^{{tree}}").strip(), *_git(repo, "ls-tree", "--format=%(objectname)", tip).split()}


def _under(repo: Path, tip: str, path: str) -> set[str]:
    """The tree at ``path`` and every tree and blob under it."""
    below = _git(repo, "ls-tree", "-r", "-t", "--format=%(objectname)", f"{tip}:{path}").split()
    return {_git(repo, "rev-parse", f"{tip}:{path}").strip(), *below}


def _listing(command: list[str], env: dict[str, str]) -> str:
    proc = run_cli(*command, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.interop
def test_tags_of_one_name_cold_fetches_only_its_path(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    tip = repo.main()
    assert tip is not None
    env = cli_env(tmp_path, git_http_server)
    seen = _Requests(git_http_server, repo)
    cold = _listing(["tags", repo.url, "acme/app"], env)
    counts, sent = seen.seen()
    # the refs (v0's advertisement); the tip with the root's trees; the name's two upper fan-out levels; its
    # bucket with the trees down to app (format version 4); app's _tags with their files (version 3: acme, then
    # app with its _tags and their files)
    assert counts == {"refs": 1, "upload-pack": 5, "other": 0}, counts
    assert sent < 6000, sent  # a few small trees and two tag files: about 2.5 kB here
    bucket = layout.NEW.name_bucket("acme/app")
    above = [bucket.rsplit("/", i)[0] for i in (2, 1, 0)] + [f"{bucket}/acme", layout.NEW.name_dir("acme/app")]
    assert _mirror_objects(tmp_path / "cache") == _tip_objects(repo.path, tip) | _under(repo.path, tip, layout.NEW.tags_dir("acme/app")) | {
        _git(repo.path, "rev-parse", f"{tip}:{path}").strip() for path in above
    }
    assert [(r["name"], r["tag"]) for r in json.loads(cold)] == [("acme/app", "1.0"), ("acme/app", "latest")]
    seen = _Requests(git_http_server, repo)
    assert _listing(["tags", repo.url, "acme/app"], env) == cold  # warm: the refs only
    assert seen.seen()[0] == {"refs": 1, "upload-pack": 0, "other": 0}
    assert _listing(["tags", str(repo.path), "acme/app"], cli_env(tmp_path / "local")) == cold


@pytest.mark.interop
def test_a_whole_registry_listing_cold_fetches_repositories_then_blobs_whole(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    tip = repo.main()
    assert tip is not None
    names = _tip_objects(repo.path, tip) | _under(repo.path, tip, "repositories")
    for command, posts, held in (("tags", 2, names), ("images", 3, names | _under(repo.path, tip, "blobs"))):
        env = cli_env(tmp_path / command, git_http_server)
        seen = _Requests(git_http_server, repo)
        cold = _listing([command, repo.url], env)
        counts, _ = seen.seen()
        # the tip, then repositories/ whole (and for images blobs/ whole): before, an exchange per level
        # of the names and per 10,000 ids (11 and 21 at 30,000 images)
        assert counts == {"refs": 1, "upload-pack": posts, "other": 0}, (command, counts)
        assert _mirror_objects(tmp_path / command / "cache") == held, command
        seen = _Requests(git_http_server, repo)
        assert _listing([command, repo.url], env) == cold  # warm
        assert seen.seen()[0] == {"refs": 1, "upload-pack": 0, "other": 0}
        assert _listing([command, str(repo.path)], cli_env(tmp_path / f"{command}-local")) == cold


@pytest.mark.interop
def test_after_a_push_a_listing_fetches_what_the_push_changed(git_http_server, tmp_path: Path) -> None:
    repo = git_http_server.create_repo(f"coldlist/pushed-{tmp_path.name}")
    env = cli_env(tmp_path / "src", git_http_server)
    for tag, source in list(IMAGES.items())[:2]:
        assert run_cli("push", str(repo.path), source, "--tag", tag, env=env).returncode == 0
    _git(repo.path, "config", "uploadpack.allowFilter", "true")
    envs = {command: cli_env(tmp_path / command, git_http_server) for command in ("tags", "images")}
    for command, env in envs.items():
        _listing([command, repo.url], env)
    before = repo.main()
    proc = run_cli("push", repo.url, NEW[1], "--tag", NEW[0], env=cli_env(tmp_path / "pusher", git_http_server))
    assert proc.returncode == 0, proc.stderr
    after = repo.main()
    assert after is not None and before is not None
    changed = set(_git(repo.path, "rev-list", "--objects", after, f"^{before}").split())
    for command, posts in (("tags", 2), ("images", 3)):
        held = _mirror_objects(tmp_path / command / "cache")
        seen = _Requests(git_http_server, repo)
        listed = _listing([command, repo.url], envs[command])
        # the tip; repositories/ (and blobs/) whole, less what the mirror holds whole from the listing before
        assert seen.seen()[0] == {"refs": 1, "upload-pack": posts, "other": 0}, command
        got = _mirror_objects(tmp_path / command / "cache") - held
        assert got <= changed, (command, sorted(got - changed))
        assert NEW[0].split(":")[0] in listed
        assert listed == _listing([command, repo.url], cli_env(tmp_path / f"{command}-fresh", git_http_server))


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_answers_kept_as_packs_list_the_same(registry, git_http_server, sshd_server, tmp_path: Path, monkeypatch, transport) -> None:
    """Every answer indexed by lfsreg.git.packstore (at 30,000 images they all are): the same listing, the same objects.

    Over HTTP (git http-backend) and over SSH (one channel per exchange, git-upload-pack run by sshd).
    """
    from lfsreg.git import partial

    monkeypatch.setattr(partial, "LOOSE_BYTES", 0)
    repo = registry
    tip = repo.main()
    assert tip is not None
    if transport == "http":
        url, env = repo.url, cli_env(tmp_path, git_http_server)
    else:
        url, env = sshd_server.url(repo), cli_env(tmp_path, sshd=sshd_server, key=sshd_server.add_key(repo))
    listed = _listing(["images", url], env)
    assert listed == _listing(["images", str(repo.path)], cli_env(tmp_path / "local"))
    held = _tip_objects(repo.path, tip) | _under(repo.path, tip, "repositories") | _under(repo.path, tip, "blobs")
    assert _mirror_objects(tmp_path / "cache") == held
    (mirror,) = (tmp_path / "cache" / "mirrors").glob("*.git")
    assert len(list((mirror / "objects" / "pack").glob("pack-*.idx"))) >= 3  # the tip, repositories/, blobs/
    assert not list((mirror / "objects" / "pack").glob("tmp_*"))
    for idx in (mirror / "objects" / "pack").glob("pack-*.idx"):
        _git(mirror, "verify-pack", str(idx))  # stock git reads them (the mirror lacks layers/: no fsck)
