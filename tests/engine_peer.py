"""A real Docker Engine API for tests: Podman's compatible service on a unix socket.

No Docker engine runs on these machines; ``podman system service`` (Debian's podman, vfs
storage, as root) answers ``/_ping``, ``/images/{name}/json``, ``/images/get`` and
``/images/load`` the way Docker does. Each :class:`Engine` has its own storage and socket.
PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from gitenv import require_tool


@dataclass(frozen=True)
class Engine:
    """One podman service: ``docker_host`` goes in ``DOCKER_HOST``; ``podman(...)`` runs the CLI on its storage."""

    root: Path
    runroot: Path  # podman refuses a runroot path longer than 50 characters: this one is short, in /tmp
    socket: Path
    log: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["podman", "--root", str(self.root / "root"), "--runroot", str(self.runroot), "--storage-driver", "vfs", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr}")
        return proc


@contextmanager
def start_engine(root: Path) -> Iterator[Engine]:
    """Start ``podman system service`` with storage under ``root``; stop it afterwards."""
    podman = require_tool("podman")
    root.mkdir(parents=True, exist_ok=True)
    engine = Engine(root, Path(tempfile.mkdtemp(prefix="lfsreg-rr-", dir="/tmp")), root / "docker.sock", root / "podman.log")
    argv = [
        podman,
        "--root",
        str(root / "root"),
        "--runroot",
        str(engine.runroot),
        "--storage-driver",
        "vfs",
        "--log-level",
        "info",
        "system",
        "service",
        "--time=0",
        engine.docker_host,
    ]
    with open(engine.log, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not engine.socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"podman service did not start:\n{engine.log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield engine
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(engine.runroot, ignore_errors=True)
