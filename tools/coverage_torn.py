"""Leave out the coverage data files that processes killed while writing them left torn.

usage: python3 tools/coverage_torn.py COVERAGE_DIR

tools/test.sh measures every Python process the tests start, and some tests kill processes
with SIGKILL at spread moments (a cancelled CI job); one killed while coverage writes its data
file at exit leaves a file SQLite cannot read, and ``coverage combine`` then warns "database disk
image is malformed" (or "isn't a coverage data file"). Such files are removed before the combine,
with one line saying how many: their process was killed, so what it measured is lost either way.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path


def torn(path: Path) -> bool:
    """Whether ``path`` is not a whole coverage data file (SQLite's check fails, or no schema table)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if db.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return True
            db.execute("SELECT version FROM coverage_schema").fetchone()
    except sqlite3.Error:
        return True
    return False


def main(directory: str) -> None:
    dropped = [p for p in sorted(Path(directory).glob("data.*")) if p.is_file() and torn(p)]
    for path in dropped:
        path.unlink()
    if dropped:
        print(f"coverage: left out {len(dropped)} data file(s) torn by a process killed while writing it")


if __name__ == "__main__":
    main(sys.argv[1])
