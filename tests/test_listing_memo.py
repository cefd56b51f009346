"""``tags`` and ``images`` of a whole registry through the listing memo (lfsreg/ops/listing.py).

A listing remembers what it read, keyed by git tree ids and image digests, in lfsreg's cache.
The same listing again (the memo known: the fast path) must print exactly what the first did
(the memo empty: everything read), in every format and filter, on registries with damage and
oddities: unparsable and unreadable tag files, missing or tampered manifests, a tag name with
a space, an invalid name. A change to the registry shows at once; a damaged memo is ignored.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from dulwich.repo import Repo
from gitenv import cli_env
from hostile import blob_path, edit_registry, tag_path
from imageverify import FIXTURES

SOURCES = {
    "acme/app:1.0": f"oci:{FIXTURES / 'app.oci'}:1.0",
    "acme/tool:2.0": f"oci:{FIXTURES / 'tool.oci'}:2.0",
    "acme/multi:1.0": f"oci:{FIXTURES / 'multi.oci'}:1.0",
    "acme/app:1.1": f"oci:{FIXTURES / 'app.oci'}:1.0",  # the same manifest as acme/app:1.0
}
LISTINGS = [
    ("images", "--image", "acme/t*"),  # first: a listing of some names must not pass for one of all
    ("images",),
    ("images", "--format", "json"),
    ("images", "--tag", "1.*", "--format", "json"),
    ("tags",),
    ("tags", "--format", "json"),
    ("tags", "--tag", "2.*"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images, one of them an index, and a second tag of app's manifest."""
    repo = tmp_path_factory.mktemp("pristine") / "reg.git"
    env = cli_env(repo.parent)
    for ref, source in SOURCES.items():
        assert run_cli("push", repo, source, "--tag", ref, env=env).returncode == 0
    return repo


def _copy(pristine: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "reg.git"
    shutil.copytree(pristine, repo, symlinks=True)
    return repo


def _digest(repo: Path, name: str, tag: str) -> str:
    r = Repo(str(repo))
    for e in r.object_store.iter_tree_contents(r[r.refs[b"refs/heads/main"]].tree):
        if e.path.decode() == tag_path(name, tag):
            return r[e.sha].as_raw_string().decode().strip()
    raise AssertionError(f"{name}:{tag}")


def _loose(repo: Path, path: str) -> Path:
    r = Repo(str(repo))
    sha = next(e.sha.decode() for e in r.object_store.iter_tree_contents(r[r.refs[b"refs/heads/main"]].tree) if e.path.decode() == path)
    return repo / "objects" / sha[:2] / sha[2:]


def _run_all(repo: Path, env: dict[str, str]) -> list[tuple[int, str, str]]:
    out = []
    for args in LISTINGS:
        proc = run_cli(*args[:1], repo, *args[1:], env=env)
        out.append((proc.returncode, proc.stdout, proc.stderr))
    return out


def _rows(text: str) -> list[list[str]]:
    """Name and tag of each row of a table."""
    return [re.split(r"\s{3,}", line)[:2] for line in text.splitlines()[1:]]


def _damage(repo: Path, tmp_path: Path, kind: str) -> None:
    app, tool = _digest(repo, "acme/app", "1.0"), _digest(repo, "acme/tool", "2.0")
    if kind == "oddities":
        edit_registry(
            repo,
            {
                tag_path("acme/multi", "junk"): b"not a digest\n",  # unparsable: named by images, left out by tags
                tag_path("acme/tool", "with space"): f"{app}\n".encode(),  # a tag name no push writes
                tag_path("acme/ghost", "1.0"): f"sha256:{'0' * 64}\n".encode(),  # its manifest is not stored
                blob_path(tool): b'{"schemaVersion": 2}',  # bytes that do not match their digest
            },
            tmp_path,
        )
    elif kind == "missing-manifest":
        _loose(repo, blob_path(app)).unlink()
    elif kind == "missing-tag-file":  # `tags` fails on it, `images` names it
        _loose(repo, tag_path("acme/tool", "2.0")).unlink()
    elif kind == "invalid-name":  # `tags` refuses the name, `images` names it; its _tags tree is acme/tool's
        edit_registry(repo, {tag_path("acme/Tool", "2.0"): f"{tool}\n".encode()}, tmp_path)


@pytest.mark.parametrize("kind", ["sound", "oddities", "missing-manifest", "missing-tag-file", "invalid-name"])
def test_a_listing_from_the_memo_is_the_listing_read_in_full(pristine: Path, tmp_path: Path, kind: str) -> None:
    repo = _copy(pristine, tmp_path)
    _damage(repo, tmp_path, kind)
    env = cli_env(tmp_path)
    memo = Path(env["LFSREG_CACHE"]) / "du"
    cold = _run_all(repo, env)
    assert sorted(p.name.split(".")[-2] for p in memo.glob("*.listing-*.json")) == ["listing-images", "listing-tags"]
    warm = _run_all(repo, env)
    assert warm == cold
    if kind == "sound":
        assert all(code == 0 and not err for code, _, err in cold)
        assert [r["tag"] for r in json.loads(cold[2][1])] == ["1.0", "1.1", "1.0", "2.0"]
    elif kind == "oddities":
        images, tags = _rows(cold[1][1]), _rows(cold[4][1])
        assert cold[1][0] == 1 and ["acme/tool", "with space"] in images and not any(r[0] == "acme/ghost" for r in images)
        errors = [line.split(": ")[2] for line in cold[1][2].splitlines()]
        assert errors == ["acme/ghost:1.0", "acme/multi:junk", "acme/tool:2.0"]
        assert cold[4][0] == 0 and ["acme/ghost", "1.0"] in tags and ["acme/tool", "with space"] in tags
        assert not any(r[1] == "junk" for r in tags)
    elif kind in ("missing-tag-file", "invalid-name"):
        assert cold[1][0] == 1 and cold[4][0] != 0 and cold[4][1] == ""
    # the same registry listed with no cache at all (nothing remembered, nothing written)
    assert _run_all(repo, cli_env(tmp_path / "nocache", LFSREG_CACHE="")) == cold


def test_a_change_to_the_registry_shows_in_the_next_listing(pristine: Path, tmp_path: Path) -> None:
    repo = _copy(pristine, tmp_path)
    env = cli_env(tmp_path)
    first = _run_all(repo, env)
    tool = _digest(repo, "acme/tool", "2.0")
    edit_registry(repo, {tag_path("acme/app", "1.1"): f"{tool}\n".encode(), tag_path("acme/new", "x"): f"{tool}\n".encode()}, tmp_path)
    changed = _run_all(repo, env)
    assert changed != first
    assert changed == _run_all(repo, cli_env(tmp_path / "fresh"))
    assert run_cli("rm", repo, "acme/multi:1.0", env=env).returncode == 0
    assert _run_all(repo, env) == _run_all(repo, cli_env(tmp_path / "fresh2"))
    tags = run_cli("tags", repo, env=env).stdout
    assert "acme/multi" not in tags and f"acme/new     x     {tool}" in tags and f"acme/app     1.1   {tool}" in tags


def test_a_warm_listing_reads_the_memo_and_a_damaged_memo_is_ignored(pristine: Path, tmp_path: Path) -> None:
    repo = _copy(pristine, tmp_path)
    env = cli_env(tmp_path)
    first = _run_all(repo, env)
    (memo,) = (Path(env["LFSREG_CACHE"]) / "du").glob("*.listing-tags.json")
    (summaries,) = (Path(env["LFSREG_CACHE"]) / "du").glob("*.listing-images.json")
    for junk in (b"[]", summaries.read_bytes().replace(b"sha256:", b"sha256:z"), summaries.read_bytes().replace(b"[", b'["x",')):
        summaries.write_bytes(junk)
        assert _run_all(repo, env) == first  # read again
    # What the memo vouches for is not read again: the tag files' and manifest's objects can go (as verify, not images, would notice).
    manifest = _loose(repo, blob_path(_digest(repo, "acme/app", "1.0")))
    for tag in ("1.0", "1.1"):
        _loose(repo, tag_path("acme/app", tag)).unlink(missing_ok=True)
    manifest.unlink()
    assert _run_all(repo, env) == first
    for junk in (b"not json", b'{"version": 1, "names": [], "tags": {"x": 1}}', memo.read_bytes().replace(b"sha256:", b"sha256:z")):
        memo.write_bytes(junk)
        again = _run_all(repo, env)
        assert [code for code, _, _ in again] == [0, 1, 1, 1, 1, 1, 1]  # read in full: the missing tag files are named
        assert all("acme/app" in err and "is missing" in err for _, _, err in again[1:3])
    data = json.loads(memo.read_text())  # entries of other trees and digests mean nothing here
    data["tags"] = {"0" * 40: "1.0 sha256:" + "0" * 64}
    data["names"] = {"0" * 40: ["acme/other", "1" * 40]}
    memo.write_text(json.dumps(data))
    assert [code for code, _, _ in _run_all(repo, env)] == [0, 1, 1, 1, 1, 1, 1]
