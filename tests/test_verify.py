"""``lfsreg verify [--deep]`` (issue 10): a clean registry exits 0; a deleted LFS object, a
truncated one, a manifest whose bytes do not match its digest are each one line and exit 1.

On a local registry and on nginx + git http-backend + giftless (objects deleted, truncated or
flipped in giftless's own storage directory).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import lfs_objects, run_cli, tree_files
from gitenv import cli_env
from hostile import blob_path, edit_registry
from imageverify import FIXTURES

from lfsreg.registry import layout

APP, APP2, TOOL, MULTI = "acme/app:1.0", "acme/app:1.1", "acme/tool:2.0", "acme/multi:1.0"
SOURCES = {
    APP: f"oci:{FIXTURES / 'app.oci'}:1.0",
    APP2: f"oci:{FIXTURES / 'app.oci'}:1.0",  # the same manifest as APP: its problems are reported once
    TOOL: f"oci:{FIXTURES / 'tool.oci'}:2.0",
    MULTI: f"oci:{FIXTURES / 'multi.oci'}:1.0",
}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp, **extra)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("pristine") / "reg.git"
    env = _env(repo.parent)
    for ref, source in SOURCES.items():
        proc = run_cli("push", repo, source, "--tag", ref, env=env)
        assert proc.returncode == 0, proc.stderr
    return repo


@pytest.fixture
def repo(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "reg.git"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def _manifest_of(repo: Path, ref: str) -> str:
    name, tag = ref.split(":")
    return tree_files(repo, f"{layout.NEW.tags_dir(name)}/{tag}")[f"{layout.NEW.tags_dir(name)}/{tag}"].decode().strip()


def _layers(repo: Path, ref: str) -> list[dict]:
    manifest = json.loads(tree_files(repo, blob_path(_manifest_of(repo, ref)))[blob_path(_manifest_of(repo, ref))])
    return manifest["layers"]


def _verify(repo: Path | str, tmp: Path, *args: str, env: dict[str, str] | None = None):
    return run_cli("verify", str(repo), *args, env=env or _env(tmp))


def test_a_clean_registry_verifies(repo, tmp_path):
    proc = _verify(repo, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "4 tag(s)" in proc.stderr and ": ok" in proc.stderr
    deep = _verify(repo, tmp_path, "--deep", "--format", "json")
    assert deep.returncode == 0, deep.stderr
    report = json.loads(deep.stdout)
    assert report["ok"] and report["deep"] and report["tags"] == 4 and report["problems"] == []
    assert report["objects"] == len(lfs_objects(repo))


def test_an_empty_registry_verifies(tmp_path):
    repo = tmp_path / "empty.git"
    assert run_cli("init", str(repo), env=_env(tmp_path)).returncode == 0
    proc = _verify(repo, tmp_path)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr


def test_a_deleted_lfs_object_is_one_line(repo, tmp_path):
    layer = _layers(repo, APP)[0]
    hexpart = layer["digest"].split(":")[1]
    (repo / "lfs" / "objects" / hexpart[:2] / hexpart[2:4] / hexpart).unlink()
    proc = _verify(repo, tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{APP}: LFS object sha256:{hexpart}") and line.endswith("missing"), line


def test_a_truncated_lfs_object_is_one_line(repo, tmp_path):
    layer = _layers(repo, TOOL)[-1]
    hexpart = layer["digest"].split(":")[1]
    path = repo / "lfs" / "objects" / hexpart[:2] / hexpart[2:4] / hexpart
    path.write_bytes(path.read_bytes()[: layer["size"] // 2])
    proc = _verify(repo, tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line == f"{TOOL}: LFS object sha256:{hexpart} ({layer['size']} bytes): has {layer['size'] // 2} bytes, expected {layer['size']}"


def test_a_manifest_whose_digest_is_wrong_is_one_line(repo, tmp_path):
    digest = _manifest_of(repo, APP)
    path = blob_path(digest)
    data = tree_files(repo, path)[path]
    edit_registry(repo, {path: data.replace(b"{", b"{ ", 1)}, tmp_path)
    proc = _verify(repo, tmp_path, "--format", "json")
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    assert len(problems) == 1, problems  # APP and APP2 share the manifest: one problem
    assert problems[0]["where"] in (APP, APP2)
    assert problems[0]["message"].startswith(f"manifest {digest} does not match its digest")
    text = _verify(repo, tmp_path)
    assert len(text.stdout.splitlines()) == 1 and "1 problem(s)" in text.stderr


def test_damaged_tree_entries_are_named(repo, tmp_path):
    """A child manifest of an index gone, a malformed pointer, a tag file of garbage: one line each."""
    index = json.loads(tree_files(repo, blob_path(_manifest_of(repo, MULTI)))[blob_path(_manifest_of(repo, MULTI))])
    child = index["manifests"][0]["digest"]
    app = {x["digest"] for x in _layers(repo, APP)}
    layer = next(x["digest"] for x in _layers(repo, TOOL) if x["digest"] not in app).split(":")[1]
    edit_registry(
        repo,
        {
            blob_path(child): None,
            layout.NEW.hex_path("layers", layer): b"version https://git-lfs.github.com/spec/v1\noid sha256:nothex\nsize 1\n",
            f"{layout.NEW.tags_dir('acme/app')}/1.1": b"not a digest\n",
        },
        tmp_path,
    )
    proc = _verify(repo, tmp_path)
    assert proc.returncode == 1
    lines = sorted(proc.stdout.splitlines())
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{APP2}: tag file:")
    assert lines[1] == f"{MULTI}: manifest {child} is missing"
    assert lines[2].startswith(f"{TOOL}: pointer for layer sha256:{layer}")


def test_deep_finds_a_flipped_byte_that_size_checks_miss(repo, tmp_path):
    layer = _layers(repo, APP)[0]
    hexpart = layer["digest"].split(":")[1]
    path = repo / "lfs" / "objects" / hexpart[:2] / hexpart[2:4] / hexpart
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _verify(repo, tmp_path).returncode == 0  # present with its size
    proc = _verify(repo, tmp_path, "--deep")
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{APP}: ") and hexpart in line, line


# -- against nginx + git http-backend + giftless ---------------------------------------------------
@pytest.mark.interop
def test_verify_over_https_against_giftless(git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    for ref in (APP, TOOL):
        proc = run_cli("push", git_http_repo.url, SOURCES[ref], "--tag", ref, env=env)
        assert proc.returncode == 0, proc.stderr
    clean = _verify(git_http_repo.url, tmp_path, env=env)
    assert clean.returncode == 0 and clean.stdout == "", clean.stderr
    assert _verify(git_http_repo.url, tmp_path, "--deep", env=env).returncode == 0

    app = [x["digest"].split(":")[1] for x in _layers(git_http_repo.path, APP)]
    tool = [x for x in _layers(git_http_repo.path, TOOL) if x["digest"].split(":")[1] not in app]
    gone, short = app[0], tool[-1]
    git_http_repo.lfs_object(gone).unlink()
    obj = git_http_repo.lfs_object(short["digest"].split(":")[1])
    obj.write_bytes(obj.read_bytes()[:-1])
    proc = _verify(git_http_repo.url, tmp_path, env=env)
    assert proc.returncode == 1
    lines = sorted(proc.stdout.splitlines())
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{APP}: LFS object sha256:{gone}") and lines[0].endswith("missing")
    assert lines[1].startswith(f"{TOOL}: LFS object {short['digest']} ({short['size']} bytes): ") and "size" in lines[1].lower()


@pytest.mark.interop
def test_verify_over_https_every_object_missing_and_a_bad_manifest(git_http_server, git_http_repo, tmp_path):
    """giftless answers 404 to a batch whose objects are all missing: each is still one line."""
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    proc = run_cli("push", git_http_repo.url, SOURCES[APP], "--tag", APP, env=env)
    assert proc.returncode == 0, proc.stderr
    layers = [x["digest"].split(":")[1] for x in _layers(git_http_repo.path, APP)]
    for oid in layers:
        git_http_repo.lfs_object(oid).unlink()
    proc = _verify(git_http_repo.url, tmp_path, env=env)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == len(layers), lines
    for oid in layers:
        (line,) = [x for x in lines if oid in x]
        assert line.startswith(f"{APP}: LFS object sha256:{oid} ") and line.endswith(": missing"), line
    digest = _manifest_of(git_http_repo.path, APP)
    path = blob_path(digest)
    edit_registry(git_http_repo.path, {path: tree_files(git_http_repo.path, path)[path] + b"\n"}, tmp_path)
    proc = _verify(git_http_repo.url, tmp_path, env=env)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{APP}: manifest {digest} does not match its digest"), line


@pytest.mark.interop
def test_deep_over_https_downloads_even_what_the_cache_holds(git_http_server, git_http_repo, tmp_path):
    """The push left every layer in the local cache; a flipped byte on the host is still found."""
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    proc = run_cli("push", git_http_repo.url, SOURCES[APP], "--tag", APP, env=env)
    assert proc.returncode == 0, proc.stderr
    oid = _layers(git_http_repo.path, APP)[0]["digest"].split(":")[1]
    obj = git_http_repo.lfs_object(oid)
    data = bytearray(obj.read_bytes())
    data[0] ^= 0xFF
    obj.write_bytes(bytes(data))
    assert _verify(git_http_repo.url, tmp_path, env=env).returncode == 0
    proc = _verify(git_http_repo.url, tmp_path, "--deep", env=env)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{APP}: ") and oid in line, line
    assert not list((tmp_path / "cache").glob("lfsreg-verify-*"))  # the temporary downloads are gone
