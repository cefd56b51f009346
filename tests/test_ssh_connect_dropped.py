"""A connection the SSH server takes and drops at once is named as closed during the handshake.

Linux may report such a drop from ``connect()`` itself (EPIPE or ECONNRESET: seen with a proxy
that cut the connection at its first byte, tests/test_ssh_cut_handshake.py). That is a
connection closed by the server during the SSH handshake, worth a retry, not a wrong host or
port ("cannot connect").
"""

from __future__ import annotations

import errno
import socket

import pytest

from lfsreg.errors import RetriableError
from lfsreg.ssh.connection import SshConnection
from lfsreg.ssh.errors import SshError
from lfsreg.ssh.settings import SshSettings
from lfsreg.ssh.url import parse_ssh_url


def _connect_failing_with(monkeypatch, tmp_path, error: OSError) -> SshError:
    def create_connection(*args, **kwargs):
        raise error

    monkeypatch.setattr(socket, "create_connection", create_connection)
    url = parse_ssh_url("ssh://git@127.0.0.1:2222/reg.git")
    connection = SshConnection(url, SshSettings(known_hosts=str(tmp_path / "known_hosts"), timeout=5.0))
    with pytest.raises(SshError) as caught:
        connection.transport()
    return caught.value


@pytest.mark.parametrize("error", [BrokenPipeError(errno.EPIPE, "Broken pipe"), ConnectionResetError(errno.ECONNRESET, "reset")])
def test_a_connection_dropped_at_connect_is_closed_during_the_handshake(monkeypatch, tmp_path, error):
    exc = _connect_failing_with(monkeypatch, tmp_path, error)
    assert str(exc) == "127.0.0.1:2222: connection closed by 127.0.0.1 during the SSH handshake"
    assert isinstance(exc, RetriableError)


def test_a_refused_connection_still_names_the_host_and_port(monkeypatch, tmp_path):
    exc = _connect_failing_with(monkeypatch, tmp_path, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert str(exc) == "127.0.0.1:2222: cannot connect: Connection refused"
    assert not isinstance(exc, RetriableError)
