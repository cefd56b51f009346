"""A missing prerequisite (tool, peer, sample) fails the test, with or without CI, and the run says so at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import without_coverage

TESTS = Path(__file__).resolve().parent

PROBE = """
from conftest import formats
from gitenv import require_tool
from peers.procs import missing, tool


def test_tool():
    require_tool("lfsreg-no-such-tool")


def test_peer_tool():
    tool("lfsreg-no-such-daemon")


def test_peer_part():
    missing("the frobnicator", "htpasswd")


def test_sample():
    formats("no-such-sample.tar")
"""


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
def test_missing_prerequisite_fails_and_is_summarised(tmp_path, ci):
    (tmp_path / "test_probe.py").write_text(PROBE)
    # unmeasured by coverage: the probe runs none of lfsreg (its conftest imports every module, which
    # each test process does anyway), and a pytest start-up under coverage cost ~0.5 s of CPU
    env = {k: v for k, v in without_coverage().items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    if ci:
        env["CI"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-q", "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "4 failed" in out and "skipped" not in out, out
    summary = out[out.index("NOT TESTED: missing prerequisites") :]
    assert "tool 'lfsreg-no-such-tool' not found on PATH; install it with tools/install-test-deps.sh" in summary, out
    assert "tool 'lfsreg-no-such-daemon' not found on PATH" in summary, out
    assert "the frobnicator; install it with tools/install-test-deps.sh (Debian package apache2-utils)" in summary, out
    assert "no-such-sample.tar not found; the real samples are ../shared/FORMATS" in summary, out
