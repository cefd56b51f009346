"""The retention benchmark (tools/bench/retention.py) runs in its smallest form and measures what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_retention_benchmark_smallest(tmp_path: Path) -> None:
    args = ["--retention-images", "6", "--retention-live", "2", "--retention-batches", "2", "--retention-kib", "8"]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "retention", *args, "--workdir", str(tmp_path), "--json", str(tmp_path / "r.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no failures" in proc.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    info = data["scenarios"]["retention"]
    assert info["lfs_deleted [work]"] == 4 and info["commits_after [work]"] == 1
    assert info["du after gc [work]"] < info["du before gc [work]"]
    assert info["lfs_bytes_freed [work]"] == info["prune bytes_freed [work]"] > 4 * 8 * 1024
