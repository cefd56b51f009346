"""The measuring runner: every command runs under a tiny wrapper that reports its wall time and peak RSS.

A :class:`Step` is one row of the report; each repetition appends a :class:`Run` and the report
shows the median time and the largest peak RSS. A failing command is recorded (exit status,
stderr tail, log) and the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
MB = 1_000_000

# Peak RSS = ru_maxrss of the reaped tree (the largest single process, KiB), from GNU time (%M)
# when /usr/bin/time exists: a child forked by Python starts with Python's ~14 MB high-water
# mark, which would hide small commands; otherwise the wrapper's getrusage(RUSAGE_CHILDREN).
WRAPPER = r"""
import json, os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
gt, rssf = "/usr/bin/time", out + ".rss"
use_gt = os.access(gt, os.X_OK)
t0 = time.perf_counter()
try:
    rc = subprocess.run([gt, "-q", "-f", "%M", "-o", rssf, *cmd] if use_gt else cmd).returncode
except OSError as e:
    print(f"bench wrapper: cannot run {cmd[0]!r}: {e}", file=sys.stderr)
    rc = 127
dt = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
rss, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
if use_gt:
    try:
        rss = int(open(rssf).read().split()[-1])
    except (OSError, ValueError, IndexError):
        pass
json.dump({"rc": rc, "seconds": dt, "maxrss_kb": rss, "cpu_seconds": cpu}, open(out, "w"))
"""


@dataclass
class Run:
    """One execution of one command (``error`` None = success)."""

    seconds: float | None
    maxrss_kb: int | None = None
    error: str | None = None
    log: str = ""
    cpu_seconds: float | None = None  # user + system of the command's processes: what a loaded machine's wall time hides

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Step:
    """One row of the report: a measured command, repeated ``len(runs)`` times."""

    key: str
    label: str
    group: str
    nbytes: int | None = None  # data moved (for MiB/s)
    rev: str | None = None  # the lfsreg revision it measures
    lfsreg: bool = False  # an lfsreg command (the peak RSS target applies)
    indent: bool = False
    cmd: str = ""
    skipped: str | None = None
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs) and self.skipped is None

    @property
    def seconds(self) -> float | None:
        """Median over the successful runs, None if the step failed."""
        vals = [r.seconds for r in self.runs if r.ok and r.seconds is not None]
        return statistics.median(vals) if vals and self.ok else None

    @property
    def cpu_seconds(self) -> float | None:
        """Median CPU time (user + system) over the successful runs that have it."""
        vals = [r.cpu_seconds for r in self.runs if r.ok and r.cpu_seconds is not None]
        return statistics.median(vals) if vals and self.ok else None

    @property
    def maxrss_mb(self) -> float | None:
        vals = [r.maxrss_kb for r in self.runs if r.maxrss_kb is not None]
        return max(vals) * 1024 / MB if vals else None


@dataclass
class Failure:
    step: str
    error: str
    cmd: str = ""
    detail: str = ""
    log: str = ""


def tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.rstrip().splitlines()[-lines:])[-2500:]


def rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def tree_bytes(path: Path | None) -> tuple[int, int]:
    """(apparent bytes, number) of the regular files under ``path`` ((0, 0) if absent)."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(path or "/nonexistent"):
        for n in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, n))
                if stat.S_ISREG(st.st_mode):
                    total, files = total + st.st_size, files + 1
    return total, files


def tool_version(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    """First line of ``cmd``'s output (its version), or why there is none."""
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    first = ((p.stdout or p.stderr).strip().splitlines() or [""])[0]
    return first if p.returncode == 0 else f"error rc={p.returncode}: {first[:200]}"


class Runner:
    """Runs commands measured, keeps the steps in report order and the failures."""

    def __init__(self, logdir: Path, timeout: float) -> None:
        self.logdir = logdir
        self.timeout = timeout
        self.steps: dict[str, Step] = {}
        self.failures: list[Failure] = []
        #: wraps every measured command (e.g. to count the HTTP requests it made)
        self.around: Callable[[Step], contextlib.AbstractContextManager[None]] = lambda _step: contextlib.nullcontext()
        self._seq = 0
        self._t0 = time.monotonic()
        logdir.mkdir(parents=True, exist_ok=True)

    def step(self, key: str, label: str, group: str, **kw: Any) -> Step:
        """The step ``key``, made on first use (its place in the report is that of the first use)."""
        if key not in self.steps:
            self.steps[key] = Step(key, label, group, **kw)
        return self.steps[key]

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def run(self, step: Step, cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            stdout: Path | None = None) -> Run:  # fmt: skip
        """Run ``cmd`` measured; append the :class:`Run` to ``step`` and return it."""
        self._seq += 1
        slug = self.logdir / f"{self._seq:03d}-{step.key.replace('/', '_')}"
        err_p, res_p = slug.with_suffix(".err"), slug.with_suffix(".json")
        cmd_s = shlex.join(cmd)
        step.cmd = step.cmd or cmd_s
        with contextlib.suppress(OSError):
            os.sync()  # flush dirty pages of earlier steps so they don't bill this one
        self.log(f"{step.group}: {step.label} ... ({cmd_s[:150]})")
        argv = [sys.executable, "-c", WRAPPER, str(res_p), *cmd]
        with self.around(step), open(stdout or slug.with_suffix(".out"), "wb") as fo, open(err_p, "wb") as fe:
            try:
                p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, start_new_session=True)
            except OSError as e:
                run = Run(None, error=f"cannot start: {e}", log=str(err_p))
            else:
                run = self._wait(p, res_p, err_p)
        step.runs.append(run)
        if run.ok:
            cpu = f", cpu {run.cpu_seconds:.2f} s" if run.cpu_seconds is not None else ""
            self.log(f"    ok {run.seconds:.2f} s{cpu}, peak RSS {(run.maxrss_kb or 0) / 1024:.0f} MiB")
        else:
            detail = tail(err_p)
            self.log(f"    FAILED: {run.error}\n" + "\n".join("      | " + x for x in detail.splitlines()))
            self.failures.append(Failure(step.label, run.error or "failed", cmd_s, detail, run.log))
        return run

    def _wait(self, p: subprocess.Popen[bytes], res_p: Path, err_p: Path) -> Run:
        try:
            p.wait(timeout=self.timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # the session started for this command
            p.wait()
            if isinstance(e, KeyboardInterrupt):
                raise
            return Run(None, error=f"timeout after {self.timeout:.0f} s", log=str(err_p))
        try:
            r = json.loads(res_p.read_text())
        except (OSError, ValueError) as e:
            return Run(None, error=f"wrapper failed (rc {p.returncode}): {e}", log=str(err_p))
        err = None if r["rc"] == 0 else f"exit status {r['rc']}"
        return Run(float(r["seconds"]), int(r["maxrss_kb"]), err, str(err_p), cpu_seconds=r.get("cpu_seconds"))

    def fail(self, step: Step, error: str, detail: str = "") -> None:
        """Record a failure that is no command's exit status (a verification, a setup step)."""
        step.runs.append(Run(None, error=error))
        self.failures.append(Failure(step.label, error, step.cmd, detail))
        self.log(f"    FAILED: {step.label}: {error}")

    def passed(self, step: Step, seconds: float | None = None) -> None:
        """Record an untimed check or setup step that succeeded."""
        step.runs.append(Run(seconds))

    @staticmethod
    def compose(total: Step, runs: list[Run], expected: int) -> None:
        """Append to ``total`` one run that is the sum of ``runs`` (its sub-steps, in order)."""
        ok = len(runs) == expected and all(r.ok for r in runs)
        err = None if ok else next((r.error for r in runs if not r.ok), "incomplete")
        rss = max((r.maxrss_kb or 0) for r in runs) if runs else None
        total.runs.append(Run(sum(r.seconds or 0.0 for r in runs) if ok else None, rss, err))

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": {k: {**asdict(s), "median_seconds": s.seconds, "maxrss_mb": s.maxrss_mb} for k, s in self.steps.items()},
            "failures": [asdict(f) for f in self.failures],
        }
