"""The CLI's listings keep what the host process froze frozen (lfsreg/cli/commands.py).

``tags`` and ``images`` freeze the objects they made, so no cycle collection scans a big
listing. They must not thaw what the process had frozen before: a program that runs the CLI
in-process (this suite does, and freezes its imported modules at start) would then scan its
whole heap in every later collection (that cost the suite 66 s of CPU).
"""

from __future__ import annotations

import gc

import pytest
from conftest import run_cli
from gitenv import cli_env
from imageverify import FIXTURES


@pytest.mark.parametrize("command", ["tags", "images"])
def test_a_listing_thaws_nothing_the_process_froze(tmp_path, command):
    env = cli_env(tmp_path)
    registry = tmp_path / "reg.git"
    assert run_cli("push", registry, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env).returncode == 0
    gc.freeze()  # what a host process froze on purpose
    frozen = gc.get_freeze_count()
    assert frozen > 0
    result = run_cli(command, registry, env=env)
    assert result.returncode == 0, result.stderr
    assert "acme/app" in result.stdout
    assert gc.get_freeze_count() > frozen // 2  # a few frozen objects may be freed meanwhile; thawed, none stay
