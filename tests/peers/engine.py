"""A real Docker Engine API: Podman's compatible service on a unix socket.

PYTEST_DONT_REWRITE

No Docker engine runs on these machines; ``podman system service`` (Debian's podman, vfs
storage, as root) answers ``/_ping``, ``/images/{name}/json``, ``/images/get`` and
``/images/load`` the way Docker does. Each :class:`Engine` has its own storage, temporary
directory (where podman spools an uploaded image) and socket, all under its ``root``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from gitenv import require_tool

from peers.procs import die_with_parent

#: Seconds a podman service may take to answer ``/_ping``.
START_TIMEOUT = 60.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def podman_storage(root: Path | str, runroot: Path | str) -> list[str]:
    """podman's options for a store of its own: images under ``root``, run state and libpod's tmp under ``runroot``.

    ``--tmpdir`` too: podmans sharing the default ``/run/libpod`` raced on its ``alive`` file when
    tests ran side by side ("creating runtime status file: open /run/libpod/alive: no such file").
    """
    return ["--root", str(root), "--runroot", str(runroot), "--tmpdir", f"{runroot}/libpod", "--storage-driver", "vfs"]


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

    def podman_argv(self, *args: str) -> list[str]:
        return ["podman", *podman_storage(self.root / "root", self.runroot), *args]

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.podman_argv(*args)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr}")
        return proc

    def api(self, method: str, path: str, timeout: float = 60.0) -> tuple[int, bytes]:
        """One small Engine API request (``path`` without the version prefix): ``(status, body)``."""
        conn = _UnixConnection(self.socket, timeout)
        try:
            conn.request(method, f"/v1.41{path}")
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@contextmanager
def start_engine(root: Path) -> Iterator[Engine]:
    """Start ``podman system service`` with storage under ``root``; stop it afterwards (the storage stays)."""
    podman = require_tool("podman")
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    engine = Engine(root, Path(tempfile.mkdtemp(prefix="lfsreg-rr-", dir="/tmp")), root / "docker.sock", root / "podman.log")
    argv = [podman, *engine.podman_argv("--log-level", "info", "system", "service", "--time=0", engine.docker_host)[1:]]
    env = {**os.environ, "TMPDIR": str(root / "tmp")}
    with open(engine.log, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent(os.getpid())
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with suppress(OSError):
                if engine.socket.exists() and engine.api("GET", "/_ping", timeout=10)[0] == 200:
                    break
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
