"""The ``verify`` benchmark scenario (tools/bench/maintain.py) runs, in its smallest form."""

from __future__ import annotations

from benchrun import run_bench


def test_verify_scenario_runs(tmp_path):
    stdout, data = run_bench("verify", "--verify-images", "3", "--verify-tags", "2", "--reps", "1", workdir=tmp_path)
    steps = data["steps"]
    for key in ("verify.push@work", "verify.verify@work", "verify.copy@work", "verify.copy_again@work"):
        assert steps[key]["median_seconds"] is not None, key
    assert "6 tags, 3 objects, 0 problems" in stdout
