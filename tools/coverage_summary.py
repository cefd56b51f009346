"""Print branch and line coverage of the lfsreg package, per sub-package and in total.

usage: python3 tools/coverage_summary.py COVERAGE_JSON

Reads the report ``coverage json`` wrote (the combined data of the test run: the pytest
processes and every Python process they started) and prints one line per group: the
sub-packages the project sets coverage targets for (lfs/, git/, ops/, registry/), the rest of
the package, and the total. Branch figures count each possible jump from a branch line, as
``coverage report`` does; "lines" are executable statements.
"""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath

GROUPS = ("lfs", "git", "ops", "registry")


def group_of(path: str) -> str:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if "lfsreg" not in parts:
        return "other"
    rest = parts[parts.index("lfsreg") + 1 :]
    return rest[0] if len(rest) > 1 and rest[0] in GROUPS else "rest"


def percent(covered: int, total: int) -> str:
    return f"{100.0 * covered / total:5.1f} %" if total else "    - "


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        files = json.load(f)["files"]
    sums: dict[str, list[int]] = {}
    for path, data in files.items():
        s = data["summary"]
        row = sums.setdefault(group_of(path), [0, 0, 0, 0, 0])
        row[0] += s.get("covered_branches", 0)
        row[1] += s.get("num_branches", 0)
        row[2] += s["covered_lines"]
        row[3] += s["num_statements"]
        row[4] += 1
    total = [sum(col) for col in zip(*sums.values(), strict=True)] if sums else [0] * 5
    print("coverage of lfsreg (tests + the CLI processes they ran)")
    print(f"  {'package':<16}{'files':>6}{'branches':>20}{'lines':>20}")
    for name in (*GROUPS, "rest", "other"):
        if name in sums:
            cb, nb, cl, nl, n = sums[name]
            label = f"lfsreg/{name}/" if name in GROUPS else "lfsreg (rest)" if name == "rest" else name
            print(f"  {label:<16}{n:>6}{percent(cb, nb):>9} {cb:>4}/{nb:<5}{percent(cl, nl):>9} {cl:>4}/{nl:<5}")
    cb, nb, cl, nl, n = total
    print(f"  {'TOTAL':<16}{n:>6}{percent(cb, nb):>9} {cb:>4}/{nb:<5}{percent(cl, nl):>9} {cl:>4}/{nl:<5}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
