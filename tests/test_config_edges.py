"""``lfsreg config`` at its edges (issue 10; branch coverage of registry/config.py): sizes shown
in every unit, removing the last key of a section, and a config file another tool wrote with a
limit that is not a byte count (refused by name, and by a push before it writes anything).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import lfs_objects, main_ref, run_cli
from gitenv import cli_env
from hostile import edit_registry
from imageverify import FIXTURES


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "reg.git"
    assert run_cli("init", str(out), env=_env(tmp_path)).returncode == 0
    return out


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2TiB", "2199023255552 (2TiB)"), ("3GB", "3000000000 (3GB)"), ("1.5GiB", "1610612736 (1536MiB)"), ("500", "500 (500B)")],
)
def test_sizes_are_shown_in_the_unit_that_divides_them(repo, tmp_path, value, shown):
    env = _env(tmp_path)
    assert run_cli("config", str(repo), "limits.object", value, env=env).returncode == 0
    assert run_cli("config", str(repo), env=env).stdout.strip() == f"limits.object={shown}"


def test_unsetting_the_last_limit_removes_the_section_and_the_file(repo, tmp_path):
    env = _env(tmp_path)
    assert run_cli("config", str(repo), "limits.object", "1GiB", env=env).returncode == 0
    assert run_cli("config", str(repo), "--unset", "limits.object", env=env).returncode == 0
    assert json.loads(run_cli("config", str(repo), "--format", "json", env=env).stdout) == {}
    ls = os.popen(f"git -C {repo} ls-tree --name-only main").read().split()
    assert "lfsreg-config.json" not in ls


@pytest.mark.parametrize("bad", [-5, 0, True, "10GiB", 1.5])
def test_a_limit_that_is_not_a_byte_count_is_named_and_blocks_a_push(repo, tmp_path, bad):
    env = _env(tmp_path)
    edit_registry(repo, {"lfsreg-config.json": json.dumps({"limits": {"storage": bad}}).encode()}, tmp_path)
    proc = run_cli("config", str(repo), env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr.splitlines()[0]
        == f"lfsreg: error: {repo}: lfsreg-config.json: limits.storage is not a positive number of bytes: {bad!r}"
    )
    tip = main_ref(repo)
    push = run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env)
    assert push.returncode == 1 and "limits.storage is not a positive number of bytes" in push.stderr
    assert main_ref(repo) == tip and lfs_objects(repo) == []
    assert run_cli("config", str(repo), "--reset", env=env).returncode == 0
    assert run_cli("config", str(repo), env=env).returncode == 0


def test_a_push_over_a_tiny_storage_limit_names_it_in_bytes_and_writes_nothing(repo, tmp_path):
    env = _env(tmp_path)
    assert run_cli("config", str(repo), "limits.storage", "500", env=env).returncode == 0
    tip = main_ref(repo)
    push = run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env)
    assert push.returncode == 1 and "limits.storage 500B" in push.stdout  # the estimate, then the refusal
    first = push.stderr.splitlines()[0]
    assert "over limits.storage (500B); nothing was uploaded" in first, first
    assert main_ref(repo) == tip and lfs_objects(repo) == []
