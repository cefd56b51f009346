"""A test run that is killed (a timeout, a cancelled job) leaves no server behind: atexit cannot run then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

# Starts dulwich's LFS server the way the fixtures do, prints its port, then waits to be killed.
CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from peers import start_dulwich_lfs
with start_dulwich_lfs(Path(sys.argv[2])) as server:
    print(server.port, flush=True)
    time.sleep(600)
"""


def _pid_listening(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:``port`` (from /proc), or None."""
    want = f"0100007F:{port:04X}"
    inodes = {line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[1] == want}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(pid)
    return None


def test_servers_die_with_a_killed_test_process(tmp_path):
    tests = Path(__file__).resolve().parent
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tests), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        server = _pid_listening(port)
        assert server is not None and server != child.pid
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while _pid_listening(port) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = _pid_listening(port)
    if leftover is not None:
        os.kill(leftover, signal.SIGKILL)  # the server this test started; don't leak it either way
    assert leftover is None, "the server outlived the killed test process"
