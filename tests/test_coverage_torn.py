"""tools/coverage_torn.py: the data files of processes killed while writing them are left out, whole ones kept."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from coverage import CoverageData

ROOT = Path(__file__).resolve().parent.parent


def test_torn_data_files_are_left_out_and_whole_ones_kept(tmp_path: Path) -> None:
    whole = CoverageData(basename=str(tmp_path / "data.host.pid1.whole"))
    whole.add_arcs({"/x/lfsreg/a.py": {(1, 2), (2, -1)}})
    whole.write()
    data = Path(whole.data_filename()).read_bytes()
    (tmp_path / "data.host.pid2.cut").write_bytes(data[: len(data) // 2])  # killed half-way through its write
    (tmp_path / "data.host.pid3.empty").write_bytes(b"")  # killed before its schema
    with sqlite3.connect(tmp_path / "data.host.pid4.other") as db:  # a database, not coverage's
        db.execute("CREATE TABLE t (x)")
    (tmp_path / "coverage.json").write_text("{}")  # not a data file: not looked at
    proc = subprocess.run([sys.executable, ROOT / "tools" / "coverage_torn.py", tmp_path], capture_output=True, text=True, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coverage.json", "data.host.pid1.whole"]
    assert proc.stdout == "coverage: left out 3 data file(s) torn by a process killed while writing it\n"
    again = subprocess.run([sys.executable, ROOT / "tools" / "coverage_torn.py", tmp_path], capture_output=True, text=True, check=True)
    assert again.stdout == ""  # nothing torn: nothing said
    kept = CoverageData(basename=str(tmp_path / "data.host.pid1.whole"))
    kept.read()
    assert kept.arcs("/x/lfsreg/a.py") == [(1, 2), (2, -1)]  # the whole file is as it was written
