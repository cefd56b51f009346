"""``lfsreg`` processes forked from a waiting one, for tests that signal or watch a real CLI process.

The kill tests (a push killed at a moment), the ``cli_at`` tests (a full disk at a stage, a
pause at a hook) need a process of its own: a pid to signal, a separate address space, its own
exit code. Each such process used to start Python, coverage (under tools/test.sh) and lfsreg's
imports again, ~0.15 s of CPU before the command ran. Here one server process per pytest worker
imports all that once and forks a child per request. A child is a real process: it sets its
own environment, working directory and standard streams (files), runs the command from the
start, and exits with its exit code; what it shares with the server is only the imported
modules (untouched: the server never runs a command) and, under coverage, the tracer (each child
saves its own data file, named for its pid).

A process started this way starts in the command, not in the interpreter's start-up: a test of
start-up itself (imports, ``python -m lfsreg``, what PATH the process finds) runs a real
``subprocess`` instead. Under ``SLOW_GIT_LOCKS`` / ``SLOW_GIT_INIT`` (tests/racers.py) the child
applies those hooks from its environment, as a process started with them would.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from racers import SLOW_HOOKS

TESTS = Path(__file__).resolve().parent

# Requests on stdin, one JSON object a line; one JSON reply a line on stdout.
#   {"op": "spawn", "entry": "lfsreg"|"cli_at", "argv": [...], "env": {...}, "cwd": str, "out": path, "err": path}
#       -> {"pid": N}
#   {"op": "poll", "pid": N} -> {"code": C or null}   (C as Popen.returncode: -N for signal N)
#   {"op": "wait", "pid": N, "timeout": T} -> {"code": C or null}
SERVER = r"""
import importlib, json, os, sys, time
sys.path.insert(0, TESTS)
from lfsreg.cli import main
for _name in ("lfsreg.api", "lfsreg.ops.push", "lfsreg.ops.pull", "lfsreg.git.remote", "lfsreg.git.filepush",
              "lfsreg.lfs.store", "lfsreg.lfs.http", "lfsreg.lfs.batch", "lfsreg.transports.oci_layout",
              "lfsreg.transports.docker_archive", "requests", "urllib3", "cli_at"):
    try:
        importlib.import_module(_name)
    except ImportError:
        pass
codes = {}

def child(req):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdin = open(0, closefd=False)  # not the server's buffered requests
    for fd, path in ((1, req["out"]), (2, req["err"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    import tempfile
    tempfile.tempdir = None
    exec(SLOW_HOOKS, {})
    if req["entry"] == "cli_at":
        sys.argv = [os.path.join(TESTS, "cli_at.py"), *req["argv"]]
        importlib.import_module("cli_at").main()
    else:
        main(req["argv"])
    sys.exit(0)

def reap(pid, flags):
    if pid in codes:
        return codes[pid]
    done, status = os.waitpid(pid, flags)
    if done == 0:
        return None
    codes[pid] = os.waitstatus_to_exitcode(status)
    return codes[pid]

for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "spawn":
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(req)  # never returns: the command exits the interpreter, as in a process of its own
        reply = {"pid": pid}
    elif req["op"] == "poll":
        reply = {"code": reap(req["pid"], os.WNOHANG)}
    else:
        deadline = time.monotonic() + req["timeout"]
        code = reap(req["pid"], os.WNOHANG)
        while code is None and time.monotonic() < deadline:
            time.sleep(0.002)
            code = reap(req["pid"], os.WNOHANG)
        reply = {"code": code}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""


class _Server:
    """The worker's fork server (started on first use, stopped when the worker exits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            log = open(os.path.join(tempfile.gettempdir(), f"lfsreg-forkserver-{os.getpid()}.log"), "a")
            code = f"TESTS = {str(TESTS)!r}\nSLOW_HOOKS = {SLOW_HOOKS!r}\n" + SERVER
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # the test's own signals (a terminal's ^C) are not the server's
            )
            log.close()
            atexit.register(self.stop)
        return self._proc

    def ask(self, request: dict) -> dict:
        with self._lock:
            proc = self._started()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the fork server died (exit {proc.wait()})")
            return json.loads(line)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()  # it ends its loop and exits (saving its coverage data)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_SERVER = _Server()


class ForkedProcess:
    """A started command, as much of :class:`subprocess.Popen` as the tests use (text output)."""

    def __init__(self, argv: Sequence[str], pid: int, out: Path, err: Path) -> None:
        self.args = list(argv)
        self.pid = pid
        self.returncode: int | None = None
        self._out, self._err = out, err

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = _SERVER.ask({"op": "poll", "pid": self.pid})["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = 5.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = _SERVER.ask({"op": "wait", "pid": self.pid, "timeout": min(left, 5.0)})["code"]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # No question to the server first (a test kills at a moment): until the server is asked
        # about it the process is not reaped, so its pid cannot have been reused; signalling a
        # process that has just ended (a zombie) does nothing.
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._out.read_text(errors="replace"), self._err.read_text(errors="replace")


def spawn(
    argv: Sequence[object], *, env: Mapping[str, str] | None = None, cwd: Path | str | None = None, entry: str = "lfsreg"
) -> ForkedProcess:
    """Start ``lfsreg ARGV`` (``entry="cli_at"``: ``cli_at.py ARGV``) in a process forked from the server.

    ``env`` is the process's whole environment (default: this process's, as it is now), ``cwd``
    its working directory (default: this process's). Its output goes to files beside
    tempfile's directory, read back by :meth:`ForkedProcess.communicate`.
    """
    args = [str(a) for a in argv]
    fd, out = tempfile.mkstemp(prefix="forked-", suffix=".out")
    os.close(fd)
    fd, err = tempfile.mkstemp(prefix="forked-", suffix=".err")
    os.close(fd)
    request = {
        "op": "spawn",
        "entry": entry,
        "argv": args,
        "env": dict(os.environ if env is None else env),
        "cwd": str(cwd if cwd is not None else os.getcwd()),
        "out": out,
        "err": err,
    }
    pid = _SERVER.ask(request)["pid"]
    return ForkedProcess(["lfsreg" if entry == "lfsreg" else "cli_at.py", *args], pid, Path(out), Path(err))


def run(
    argv: Sequence[object], *, env: Mapping[str, str] | None = None, cwd: Path | str | None = None, entry: str = "lfsreg", timeout: float
) -> subprocess.CompletedProcess[str]:
    """:func:`spawn`, then wait (``timeout`` seconds at most, then kill and raise TimeoutExpired)."""
    proc = spawn(argv, env=env, cwd=cwd, entry=entry)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
