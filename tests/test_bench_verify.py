"""The ``verify`` benchmark scenario (tools/bench/maintain.py) runs, in its smallest form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_verify_scenario_runs(tmp_path):
    args = ["verify", "--verify-images", "3", "--verify-tags", "2", "--reps", "1", "--workdir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", *args, "--json", str(tmp_path / "r.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = json.loads((tmp_path / "r.json").read_text())["steps"]
    for key in ("verify.push@work", "verify.verify@work", "verify.copy@work", "verify.copy_again@work"):
        assert steps[key]["median_seconds"] is not None, key
    assert "6 tags, 3 objects, 0 problems" in proc.stdout
