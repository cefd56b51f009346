"""The retention benchmark (tools/bench/retention.py) runs in its smallest form and measures what it says."""

from __future__ import annotations

from pathlib import Path

from benchrun import run_bench


def test_retention_benchmark_smallest(tmp_path: Path) -> None:
    args = ["--retention-images", "6", "--retention-live", "2", "--retention-batches", "2", "--retention-kib", "8"]
    stdout, data = run_bench("retention", *args, workdir=tmp_path)
    assert "no failures" in stdout
    info = data["scenarios"]["retention"]
    assert info["lfs_deleted [work]"] == 4 and info["commits_after [work]"] == 1
    assert info["du after gc [work]"] < info["du before gc [work]"]
    assert info["lfs_bytes_freed [work]"] == info["prune bytes_freed [work]"] > 4 * 8 * 1024
