"""Processes, ports and tool lookup shared by every peer server of :mod:`peers`.

PYTEST_DONT_REWRITE

Each server is one or more process groups of our own (``start_new_session``), health-checked
before it is handed out and stopped with SIGTERM to its process group (SIGKILL after
:data:`STOP_TIMEOUT`); an ``atexit`` hook stops whatever a teardown missed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gitenv import install_step, missing_prerequisite, require_tool

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

HOST = "127.0.0.1"
#: Seconds a server may take to answer its health check.
START_TIMEOUT = 15.0
#: Seconds between SIGTERM and SIGKILL when stopping a process group.
STOP_TIMEOUT = 10.0


# -- tool lookup ----------------------------------------------------------------------------------
def missing(msg: str, tool: str = "") -> NoReturn:
    """Fail the test: a peer's part is missing (``gitenv.missing_prerequisite``); ``tool`` names the
    Debian package's tool that provides it, if any."""
    missing_prerequisite(msg, install_step(tool))


def tool(name: str) -> str:
    """Path of an executable on PATH or in /usr/sbin (not on a non-root PATH); else fail the test."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    return found if found else require_tool(name)


# -- processes ------------------------------------------------------------------------------------
_RUNNING: list[Proc] = []
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` (the test process) dies, even by SIGKILL.

    ``atexit`` cannot stop servers of a test run that was killed (a timeout, a cancelled job):
    on Linux the kernel can (``prctl(PR_SET_PDEATHSIG)``; it fires when the thread that started
    the server ends, and every peer is started from the main thread).
    """

    def hook() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class Proc:
    """A server process started as the leader of its own session / process group."""

    def __init__(self, argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        self.pgid = self.popen.pid
        _RUNNING.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Whether a live (non-zombie) process of our group is still there (leader or children).

        Zombies are ignored: children orphaned by their exiting master (fcgiwrap's
        preforked workers) are reaped by PID 1 whenever it gets round to it, which can take
        a second; they hold nothing any more.
        """
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - cannot happen for our own children
            return True
        try:
            entries = os.listdir("/proc")
        except OSError:  # pragma: no cover - no procfs: trust killpg
            return True
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid pgrp ...": comm may contain spaces/parens, split after it
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == self.pgid and fields[0] not in ("Z", "X"):
                return True
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, wait, SIGKILL what is left."""
        if self in _RUNNING:
            _RUNNING.remove(self)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.popen.wait(timeout)
        # workers that outlived their master (the group id stays reserved while they exist)
        deadline = time.monotonic() + timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.group_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)


@atexit.register
def _stop_leftovers() -> None:
    """Safety net: never leave a server behind if a teardown did not run."""
    for proc in list(_RUNNING):
        proc.stop(2.0)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_healthy(procs: list[Proc], check: Callable[[], bool], what: str, logs: list[Path], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise RuntimeError(f"{what} exited during start-up ({dead[0].argv[0]})\n" + "\n".join(_tails(logs)))
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not healthy after {timeout} s\n" + "\n".join(_tails(logs)))
        time.sleep(0.03)


def _tails(logs: list[Path]) -> list[str]:
    return [f"---- {p} ----\n{log_tail(p)}" for p in logs]


def started(start: Callable[[int], tuple[list[Proc], Path]], check: Callable[[int], bool], what: str) -> tuple[int, list[Proc]]:
    """Start on a free port and wait until healthy; retry on another port if the bind races."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        procs, log = start(port)
        try:
            wait_healthy(procs, functools.partial(check, port), what, [log])
        except RuntimeError as exc:
            for p in reversed(procs):
                p.stop(2.0)
            if "in use" not in log_tail(log, 200):
                raise
            last = exc
            continue
        return port, procs
    raise RuntimeError(f"{what}: no free port after 3 tries") from last
