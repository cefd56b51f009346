"""lfsreg needs no external programs: the whole CLI round trip with only a python interpreter on PATH."""

from __future__ import annotations

import json
import os

import pytest
from conftest import (
    NO_SPAWN,
    Layout,
    assert_ok,
    check_docker_archive_output,
    python_only_path,
    read_docker_archive,
    run_cli,
    sample,
    verify_layout,
)


@pytest.fixture
def bare_env(tmp_path):
    """(python path, env): PATH holds only a directory with a symlink to this interpreter."""
    python = python_only_path(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"PATH": str(python.parent), "HOME": str(home), "TMPDIR": str(tmp), "LC_ALL": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return str(python), env


def _lfsreg(bare_env, *args):
    python, env = bare_env
    return run_cli(*args, env=env, python=python)


def test_environment_has_no_tools(bare_env):
    import subprocess

    python, env = bare_env
    names = ["git", "git-lfs", "ssh", "docker", "skopeo", "gzip", "zstd", "tar"]
    code = f"import json, shutil; print(json.dumps([shutil.which(n) for n in {names!r}]))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    assert json.loads(proc.stdout) == [None] * len(names)


def test_cli_roundtrip_without_binaries(tmp_path, bare_env):
    repo = tmp_path / "reg.git"
    assert_ok(_lfsreg(bare_env, "init", repo))
    assert_ok(_lfsreg(bare_env, "push", repo, f"docker-archive:{sample('fixtures', 'app.docker.tar')}"))
    assert_ok(_lfsreg(bare_env, "push", repo, f"oci:{sample('fixtures', 'tool.oci')}:2.0", "--tag", "acme/tool:2.0"))
    assert_ok(_lfsreg(bare_env, "push", repo, f"oci:{sample('fixtures', 'multi.oci')}:1.0", "--tag", "acme/multi:1.0"))

    proc = _lfsreg(bare_env, "images", repo, "--format", "json")
    assert_ok(proc)
    assert {(r["name"], r["tag"]) for r in json.loads(proc.stdout)} == {("acme/app", "1.0"), ("acme/tool", "2.0"), ("acme/multi", "1.0")}
    assert_ok(_lfsreg(bare_env, "tags", repo))
    assert_ok(_lfsreg(bare_env, "inspect", repo, "acme/app:1.0"))

    out = tmp_path / "app.tar"
    assert_ok(_lfsreg(bare_env, "pull", repo, "acme/app:1.0", "-o", f"docker-archive:{out}"))
    (entry,) = check_docker_archive_output(out)
    (source,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    assert entry.config == source.config
    assert entry.diff_ids == source.diff_ids

    layout_dir = tmp_path / "tool"
    assert_ok(_lfsreg(bare_env, "pull", repo, "acme/tool:2.0", "-o", f"oci:{layout_dir}"))
    src = Layout(sample("fixtures", "tool.oci"))
    assert verify_layout(layout_dir).entry("2.0")["digest"] == src.entry("2.0")["digest"]

    archive = tmp_path / "multi.oci.tar"
    assert_ok(_lfsreg(bare_env, "pull", repo, "acme/multi:1.0", "-o", f"oci-archive:{archive}:1.0"))
    assert verify_layout(archive).entry("1.0")["digest"] == Layout(sample("fixtures", "multi.oci")).entry("1.0")["digest"]

    assert_ok(_lfsreg(bare_env, "rm", repo, "acme/tool:2.0"))
    assert _lfsreg(bare_env, "pull", repo, "acme/tool:2.0", "-o", f"oci:{tmp_path / 'gone'}").returncode == 1


def test_no_process_is_started(tmp_path, bare_env):
    """With an audit hook that aborts on any attempt to start a program, every command still works."""
    import subprocess

    python, env = bare_env

    def run(*args):
        proc = subprocess.run(
            [python, "-c", NO_SPAWN, *(str(a) for a in args)], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert "SPAWN ATTEMPT" not in proc.stderr, proc.stderr
        assert_ok(proc)
        return proc

    repo = tmp_path / "reg.git"
    run("init", repo)
    run("push", repo, f"docker-archive:{sample('fixtures', 'app.docker.tar.gz')}", "--compression", "gzip")
    run("push", repo, f"oci-archive:{sample('fixtures', 'app.oci.tar')}:1.0", "--tag", "acme/app:oci")
    run("images", repo)
    run("pull", repo, "acme/app:1.0", "acme/app:oci", "-o", f"docker-archive:{tmp_path / 'out.tar'}")
    entries = check_docker_archive_output(tmp_path / "out.tar")
    assert len(entries) == 2 and entries[0].config == entries[1].config
    run("pull", repo, "acme/app:oci", "-o", f"oci-archive:{tmp_path / 'out.oci.tar'}:x")
    assert verify_layout(tmp_path / "out.oci.tar").entry("x")["digest"] == Layout(sample("fixtures", "app.oci")).entry("1.0")["digest"]
