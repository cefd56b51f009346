"""The ``cost`` benchmark scenario (tools/bench/cost.py: ``du`` on a large registry) runs, in its smallest form."""

from __future__ import annotations

from benchrun import run_bench


def test_cost_scenario_runs(tmp_path):
    stdout, data = run_bench("cost", "--du-images", "3", "--du-tags", "2", "--du-reps", "1", workdir=tmp_path)
    steps = data["steps"]
    for key in ("cost.push@work", "cost.du_cold@work", "cost.du_warm@work", "cost.du_json@work", "cost.verify@work"):
        assert steps[key]["median_seconds"] is not None, key
    assert "live tags reference:" in stdout and "in 3 LFS object(s)" in stdout
