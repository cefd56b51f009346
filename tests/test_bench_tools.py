"""The benchmarks (tools/bench) still run: each scenario in its smallest form, so the tools cannot rot.

These check that every scenario completes and reports, not how fast lfsreg is: the targets
may be missed on a busy machine, failures may not.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest
from benchrun import ROOT, run_bench

SMALLEST = ["--size", "1MiB", "--scale-images", "2", "--scale-tags", "2", "--scale-reps", "1", "--reps", "1"]


def bench(*args: str, workdir: Path) -> dict:
    stdout, data = run_bench(*args, *SMALLEST, workdir=workdir)  # unmeasured by coverage (benchrun)
    assert "no failures" in stdout
    return data


def test_no_import_cycle():
    package = ROOT / "tools" / "bench"
    graph = {}
    for path in package.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "tools.bench":
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tools.bench."):
                deps.add(node.module.split(".")[2])
        graph[path.stem] = deps
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError


def test_help_names_every_scenario():
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in ("local", "scale", "https", "ssh", "engine", "--lfsreg-rev"):
        assert name in proc.stdout


def test_local_beside_another_revision(tmp_path):
    data = bench("local", "--lfsreg-rev", "HEAD", "--compression", "none", workdir=tmp_path)
    steps = data["steps"]
    for key in ("floor", "local.git.push", "local.git.pull", "local.none.push@work", "local.none.push@HEAD"):
        assert steps[key]["median_seconds"] is not None, key
    assert steps["local.none.verify@HEAD"]["runs"]  # the pull was checked against the pushed image
    assert any(c["name"].startswith("[HEAD] lfsreg push (none) / git+lfs push") and c["value"] != "-" for c in data["checks"])


def test_scale(tmp_path):
    # Beside one revision only: running a scenario beside another is the runner's, whatever the
    # scenario (the test above); doing it here too only doubled this test's ~20 lfsreg runs.
    steps = bench("scale", workdir=tmp_path)["steps"]
    for key in ("scale.tags@work", "scale.tagsj@work", "scale.images@work"):
        assert steps[key]["median_seconds"] is not None, key


@pytest.mark.interop
@pytest.mark.slow
# One bench run per scenario, so that xdist spreads them: together they were the suite's longest
# test (21 s on a quiet machine), often the last one a run waited for.
@pytest.mark.parametrize(
    ("scenario", "keys"),
    [
        ("https", ("https.git.push", "https.none.warm@work")),
        ("ssh", ("ssh.none.ssh.pull@work",)),
        ("engine", ("eng.eng.push@work", "eng.load@work")),
    ],
)
def test_server_scenarios(tmp_path, scenario, keys):
    steps = bench(scenario, "--compression", "none", workdir=tmp_path)["steps"]
    for key in keys:
        assert steps[key]["median_seconds"] is not None, key
