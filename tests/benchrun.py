"""Running ``python -m tools.bench`` from a test: one scenario in its smallest form, its report read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clirun import without_coverage

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, workdir: Path, env: dict[str, str] | None = None) -> tuple[str, dict]:
    """Run the benchmark with ``args`` in ``workdir``; assert it exited 0; return its stdout and its JSON report.

    Unmeasured by coverage (tools/test.sh), whatever ``env`` (default: this process's) says:
    these tests check that the tools run, not lfsreg, whose every path here other tests
    measure; coverage in each of the dozens of timed lfsreg processes a scenario runs only
    added start-up work (~0.1 s each) and distorted the timings.
    """
    report = workdir / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", *args, "--workdir", str(workdir), "--json", str(report)],
        cwd=ROOT,
        env=without_coverage(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(report.read_text())
