"""``lfsreg copy`` with a ``docker://`` side is a usage error pointing to ``pull -o`` / ``push`` (issue 11).

``copy`` moves LFS objects and pointer files between git registries; a distribution registry
has neither, so it is not one more copy location: exit 2, one line, nothing opened or created.
"""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from gitenv import cli_env


def test_copy_refuses_docker_locations(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    into = run_cli("copy", repo, "docker://127.0.0.1:1/acme/app:1", env=env)
    assert into.returncode == 2 and "lfsreg pull" in into.stderr and "-o docker://127.0.0.1:1/acme/app:1" in into.stderr, into.stderr
    out = run_cli("copy", "docker://127.0.0.1:1/acme/app:1", repo, env=env)
    assert out.returncode == 2 and f"lfsreg push {repo} docker://127.0.0.1:1/acme/app:1" in out.stderr, out.stderr
    assert not repo.exists()
