"""The ``cost`` benchmark scenario (tools/bench/cost.py: ``du`` on a large registry) runs, in its smallest form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cost_scenario_runs(tmp_path):
    args = ["cost", "--du-images", "3", "--du-tags", "2", "--du-reps", "1", "--workdir", str(tmp_path)]
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
    for key in ("cost.push@work", "cost.du_cold@work", "cost.du_warm@work", "cost.du_json@work"):
        assert steps[key]["median_seconds"] is not None, key
    assert "live tags reference:" in proc.stdout and "in 3 LFS object(s)" in proc.stdout
