"""Which lfsreg a run measures: the working tree and every commit named by ``--lfsreg-rev``, side by side.

A commit runs from a temporary snapshot of its ``lfsreg/`` directory (``git archive``) put first
on ``PYTHONPATH``, so the same interpreter and dependencies run both; the snapshot is checked
to be what ``import lfsreg`` finds, and removed at the end.

Every lfsreg measured, the working tree's included, has its bytecode compiled first (untimed),
as an install does: otherwise each command would also time the compiling of its modules
(``PYTHONDONTWRITEBYTECODE`` set, or a fresh snapshot), and the working tree would run with
whatever bytecode a test run left in it while the snapshots compile on every command.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_WHERE = "import lfsreg, sys; sys.stdout.write(lfsreg.__file__)"


@dataclass(frozen=True)
class Lfsreg:
    """One lfsreg to measure: ``name`` is ``work`` (the working tree) or the revision as given."""

    name: str
    commit: str  # "" for the working tree
    argv: tuple[str, ...]  # the command prefix, e.g. ("python", "-m", "lfsreg")
    source: Path  # the directory holding the lfsreg package it imports

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        # PYTHONSAFEPATH: `python -m` would put the current directory first on sys.path, and a command run from the
        # project's root (every call without a cwd) would import the working tree's lfsreg whatever PYTHONPATH says
        return {**base, "PYTHONPATH": str(self.source), "PYTHONSAFEPATH": "1"}


def prepare(lfsreg_cmd: str, revs: list[str], tmp: Path) -> list[Lfsreg]:
    """The working tree's lfsreg, then one per revision (snapshots under ``tmp``).

    Raises:
        RuntimeError: A revision is unknown, its export failed, or its snapshot is not what runs.

    """
    argv = tuple(shlex.split(lfsreg_cmd))
    out = [Lfsreg("work", "", argv, PROJECT_ROOT)]
    for rev in revs:
        sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
        dest = tmp / sha[:12]
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", sha, "lfsreg"], capture_output=True, check=False)
        untar = subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, capture_output=True, check=False)
        if archive.returncode or untar.returncode:
            raise RuntimeError(f"cannot export lfsreg/ of {rev}: {(archive.stderr or untar.stderr).decode(errors='replace')[-500:]}")
        out.append(Lfsreg(re.sub(r"[^A-Za-z0-9._-]+", "-", rev), sha, argv, dest))  # a name for paths too
    for lr in out:
        _compile(argv[0] if argv[1:3] == ("-m", "lfsreg") else sys.executable, lr.source / "lfsreg")
        if len(argv) >= 3 and argv[1:3] == ("-m", "lfsreg"):  # a python: check which lfsreg it imports
            p = subprocess.run(
                [argv[0], "-c", _WHERE], env=lr.env({"PATH": "/usr/bin:/bin"}), cwd="/", capture_output=True, text=True, check=False
            )
            if not p.stdout.startswith(str(lr.source)):
                raise RuntimeError(f"lfsreg {lr.name}: {argv[0]} imports {p.stdout or p.stderr[-300:]}, not {lr.source}")
    return out


def _compile(python: str, package: Path) -> None:
    """Write the bytecode of ``package`` beside it (its ``__pycache__``), as ``pip install`` does.

    Raises:
        RuntimeError: The package does not compile.

    """
    p = subprocess.run([python, "-m", "compileall", "-q", str(package)], capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"cannot compile {package}: {(p.stdout + p.stderr).strip()[-500:]}")


def _git(*args: str) -> str:
    p = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.strip()[-500:]}")
    return p.stdout
