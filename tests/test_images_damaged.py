"""``lfsreg images`` on a registry with one damaged or missing blob (defect 3 of issue 9).

One corrupt blob used to fail the whole listing (an internal error for a missing git object).
Now every image that can be read is listed, every one that cannot is named on stderr (one
line each), and the exit code is 1; ``--format json`` carries the errors as entries too.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli
from dulwich.repo import Repo
from gitenv import cli_env
from hostile import blob_path, edit_registry, tag_path
from imageverify import FIXTURES

APP, TOOL, MULTI, APP2 = "acme/app:1.0", "acme/tool:2.0", "acme/multi:1.0", "acme/app:1.1"
SOURCES = {
    APP: f"oci:{FIXTURES / 'app.oci'}:1.0",
    TOOL: f"oci:{FIXTURES / 'tool.oci'}:2.0",
    MULTI: f"oci:{FIXTURES / 'multi.oci'}:1.0",
    APP2: f"oci:{FIXTURES / 'app.oci'}:1.0",  # the same manifest as APP, under another tag
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding four tags (two of them one manifest), built once."""
    repo = tmp_path_factory.mktemp("pristine") / "reg.git"
    env = cli_env(repo.parent)
    for ref, source in SOURCES.items():
        proc = run_cli("push", repo, source, "--tag", ref, env=env)
        assert proc.returncode == 0, proc.stderr
    return repo


def _copy(pristine: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "reg.git"
    shutil.copytree(pristine, repo, symlinks=True)
    return repo


def _object_file(repo: Path, path: str) -> Path:
    """The loose object file of the blob at ``path`` on main."""
    r = Repo(str(repo))
    sha = r.object_store.iter_tree_contents(r[r.refs[b"refs/heads/main"]].tree)
    found = [e.sha.decode() for e in sha if e.path.decode() == path]
    assert len(found) == 1, path
    loose = repo / "objects" / found[0][:2] / found[0][2:]
    assert loose.is_file(), f"{path}: not a loose object (packed?)"
    return loose


def _tag_digest(repo: Path, ref: str) -> str:
    name, tag = ref.split(":")
    r = Repo(str(repo))
    for e in r.object_store.iter_tree_contents(r[r.refs[b"refs/heads/main"]].tree):
        if e.path.decode() == tag_path(name, tag):
            return r[e.sha].as_raw_string().decode().strip()
    raise AssertionError(ref)


def _remove(loose: Path) -> None:
    loose.unlink()


def _garbage(loose: Path) -> None:
    loose.chmod(0o644)
    loose.write_bytes(b"this is not a zlib stream")


def _other_content(loose: Path) -> None:
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(b"blob 5\x00hello"))  # a valid object, under the wrong name


def _images(repo: Path, tmp_path: Path, *extra: str):
    return run_cli("images", repo, *extra, env=cli_env(tmp_path))


def _listed(stdout: str) -> list[str]:
    return [":".join(line.split()[:2]) for line in stdout.splitlines()[1:]]


DAMAGE: dict[str, Callable[[Path], None]] = {"missing": _remove, "garbage": _garbage, "other-content": _other_content}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_tag_file_is_named_and_the_others_are_listed(pristine: Path, tmp_path: Path, damage: str) -> None:
    repo = _copy(pristine, tmp_path)
    DAMAGE[damage](_object_file(repo, tag_path("acme/tool", "2.0")))
    proc = _images(repo, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _listed(proc.stdout) == [APP, APP2, MULTI]
    errors = proc.stderr.splitlines()
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"lfsreg: error: {TOOL}: git object "), errors[0]
    assert tag_path("acme/tool", "2.0") in errors[0]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_manifest_blob_names_every_tag_that_uses_it(pristine: Path, tmp_path: Path, damage: str) -> None:
    repo = _copy(pristine, tmp_path)
    digest = _tag_digest(repo, APP)
    DAMAGE[damage](_object_file(repo, blob_path(digest)))
    proc = _images(repo, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _listed(proc.stdout) == [MULTI, TOOL]
    errors = proc.stderr.splitlines()
    assert [e.split(": ")[2] for e in errors] == [APP, APP2], proc.stderr
    assert all(e.startswith("lfsreg: error: ") and "internal error" not in e for e in errors)


def test_json_carries_the_errors_as_entries(pristine: Path, tmp_path: Path) -> None:
    repo = _copy(pristine, tmp_path)
    tool_digest = _tag_digest(repo, TOOL)
    _remove(_object_file(repo, blob_path(tool_digest)))
    proc = _images(repo, tmp_path, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    rows = json.loads(proc.stdout)
    good = [f"{r['name']}:{r['tag']}" for r in rows if "error" not in r]
    bad = [r for r in rows if "error" in r]
    assert good == [APP, APP2, MULTI]
    assert [(f"{r['name']}:{r['tag']}", r["digest"]) for r in bad] == [(TOOL, tool_digest)]
    assert "is missing" in bad[0]["error"]
    assert len(proc.stderr.splitlines()) == 1 and TOOL in proc.stderr


def test_a_tag_file_that_does_not_parse_is_named(pristine: Path, tmp_path: Path) -> None:
    """A valid git blob whose content is no digest: it was left out without a word."""
    repo = _copy(pristine, tmp_path)
    edit_registry(repo, {tag_path("acme/multi", "1.0"): b"not a digest\n"}, tmp_path)
    proc = _images(repo, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _listed(proc.stdout) == [APP, APP2, TOOL]
    assert proc.stderr.splitlines() == [f"lfsreg: error: {MULTI}: {repo}: tag file for {MULTI} is corrupt"]


def test_a_manifest_that_does_not_match_its_digest_is_named(pristine: Path, tmp_path: Path) -> None:
    repo = _copy(pristine, tmp_path)
    digest = _tag_digest(repo, TOOL)
    edit_registry(repo, {blob_path(digest): b'{"schemaVersion": 2}'}, tmp_path)
    proc = _images(repo, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _listed(proc.stdout) == [APP, APP2, MULTI]
    assert proc.stderr.splitlines() == [f"lfsreg: error: {TOOL}: {repo}: stored blob {digest} does not match its digest"]


def test_an_undamaged_registry_still_exits_0(pristine: Path, tmp_path: Path) -> None:
    proc = _images(pristine, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _listed(proc.stdout) == [APP, APP2, MULTI, TOOL]
    assert proc.stderr == ""
