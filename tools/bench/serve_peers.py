"""The servers the serve benchmark compares: ``lfsreg serve`` and docker-registry, and a peak-RSS sampler."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tools.bench.runner import rmtree
from tools.bench.session import Session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def lfsreg_serve(s: Session, cmd: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """``lfsreg serve`` running; yields ``(host:port, pid)``."""
    with open(log, "wb") as err:
        p = subprocess.Popen([*cmd, "--listen", "127.0.0.1:0", "--format", "json"], env=env, stdout=subprocess.PIPE, stderr=err)
        try:
            line = p.stdout.readline() if p.stdout else b""
            if not line:
                raise RuntimeError(f"lfsreg serve did not start: {log.read_text()[-2000:]}")
            yield json.loads(line)["url"].removeprefix("http://"), p.pid
        finally:
            p.terminate()
            p.wait(timeout=60)


@contextlib.contextmanager
def docker_registry(work: Path) -> Iterator[tuple[str, int]]:
    """Debian's docker-registry (distribution 2.8) on a free port, storage under ``work``; yields ``(host:port, pid)``."""
    rmtree(work)
    work.mkdir(parents=True)
    port = _free_port()
    config = work / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {work / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(work / "log", "wb") as log:
        p = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", p.pid
    finally:
        p.terminate()
        p.wait(timeout=60)


class PeakRss:
    """Samples a process's resident set (and reads its high-water mark) while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()

    def _read(self, field: str) -> int:
        with contextlib.suppress(OSError, ValueError, StopIteration), open(f"/proc/{self.pid}/status") as f:
            return int(next(line for line in f if line.startswith(field)).split()[1])
        return 0

    def __enter__(self) -> PeakRss:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kb = max(self.peak_kb, self._read("VmRSS:"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.peak_kb = max(self.peak_kb, self._read("VmHWM:"))
