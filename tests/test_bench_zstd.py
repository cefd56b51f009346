"""The ``zstd`` benchmark scenario (issue 13: push and pull beside the compressor) still runs and reports.

It checks that the scenario completes and computes its ratios, not how fast lfsreg is: at 1 MiB
every ratio is start-up time, and the targets may be missed on a busy machine.
"""

from __future__ import annotations

from benchrun import run_bench
from clirun import without_coverage


def test_the_compressor_scenario_reports_every_ratio(tmp_path):
    stdout, data = run_bench("zstd", "--size", "1MiB", "--reps", "1", workdir=tmp_path, env=without_coverage())
    assert "no failures" in stdout
    yardsticks = ("zstd.cli", "zstd.cli.d", "zstd.sha", "zstd.git.push")
    lfsreg_steps = ("zstd.push.zstd@work", "zstd.pull.zstd@work", "zstd.pull-oci.zstd@work", "zstd.push.none@work", "zstd.pull.none@work")
    for key in (*yardsticks, *lfsreg_steps):
        assert data["steps"][key]["median_seconds"] is not None, key
    assert data["steps"]["zstd.verify.zstd@work"]["runs"]  # the pull was checked against the pushed image
    ratios = [c for c in data["checks"] if c["name"].startswith("[work] best of 1:")]
    assert len(ratios) == 6 and all(c["value"] != "-" for c in ratios), ratios
    assert data["scenarios"]["zstd"]["load average at each repetition"]
