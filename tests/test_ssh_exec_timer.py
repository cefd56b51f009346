"""The bound on an exec request's answer (SshConnection._exec_within) when the connection dies as it fires.

Its timer closes the channel to wake paramiko's unbounded wait; when the connection is already
gone, paramiko's close raises EOFError on the timer thread. Seen in a full run as an unhandled
thread exception (test_ssh_exec_failures, under load). A channel stand-in gives the exact moment;
the real server cases are in tests/test_ssh_exec_failures.py.
"""

from __future__ import annotations

import threading

import pytest

from lfsreg.ssh.connection import SshConnection
from lfsreg.ssh.settings import SshSettings
from lfsreg.ssh.url import parse_ssh_url


class _DeadChannel:
    """Waits for an answer that never comes; closing it finds the transport gone (paramiko raises EOFError)."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def exec_command(self, command: str) -> None:
        self.closed.wait(10)
        raise EOFError()

    def close(self) -> None:
        self.closed.set()
        raise EOFError()


def test_a_timer_that_finds_the_connection_gone_raises_nothing_on_its_thread(monkeypatch):
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    connection = SshConnection(parse_ssh_url("ssh://git@127.0.0.1:1/r.git"), SshSettings(timeout=0.2))
    chan = _DeadChannel()
    with pytest.raises(TimeoutError, match=r"no answer to the exec request within 0\.2 s"):
        connection._exec_within(chan, "git-upload-pack '/r.git'")  # type: ignore[arg-type]
    assert chan.closed.is_set() and errors == []
