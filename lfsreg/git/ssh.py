"""git over SSH through dulwich, with the transport on paramiko (:mod:`lfsreg.ssh.connection`).

dulwich 1.2 ships no paramiko vendor, and its default one runs the ``ssh`` binary, which
lfsreg must never do: :class:`ChannelVendor` runs ``git-upload-pack``/``git-receive-pack`` on
a channel of the operation's one :class:`~lfsreg.ssh.connection.SshConnection`. A server
command that ends without a byte of output (a refused deploy key, a read-only key pushing, a
missing repository) becomes one classified error (:func:`lfsreg.ssh.errors.command_failed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import IO, Any

from dulwich.client import GitClient, SSHGitClient, SSHVendor
from paramiko import SSHException

from ..errors import RetriableError
from ..ssh.connection import Channel, SshConnection
from ..ssh.errors import command_failed
from ..ssh.url import SshUrl

PROTOCOL_V2 = 2  # asked for with GIT_PROTOCOL=version=2 (servers without AcceptEnv answer v0)


class _GitChannel:
    """The socket-like object dulwich's ``SSHGitClient`` reads and writes."""

    def __init__(self, channel: Channel, label: str) -> None:
        self._channel = channel
        self._label = label

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._channel.read(n if n >= 0 else 1 << 30)
        except TimeoutError:
            raise RetriableError(
                f"{self._label}: the server sent nothing within the read timeout while git was reading (stalled)",
                hint="a slow server or network: raise LFSREG_TIMEOUT",
            ) from None
        except (EOFError, OSError, SSHException) as exc:
            raise RetriableError(f"{self._label}: the SSH connection was cut while reading from git: {type(exc).__name__}") from None
        if not data and self._channel.received == 0:
            # The command ended before saying anything: the server refused it.
            name = self._channel.command.split()[0]
            status = self._channel.exit_status()
            raise command_failed(self._label, name, status, self._channel.stderr(), writing=name == "git-receive-pack")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._channel.write(data)
        except (EOFError, OSError, SSHException) as exc:  # paramiko's ways of saying the connection is gone
            raise RetriableError(f"{self._label}: the SSH connection was cut while sending to git: {type(exc).__name__}") from None

    def can_read(self) -> bool:
        return self._channel.can_read()

    @property
    def stderr(self) -> IO[bytes] | None:
        return None

    def close(self) -> None:
        with contextlib.suppress(EOFError, OSError, SSHException):  # closing a cut channel
            self._channel.close()


class ChannelVendor(SSHVendor):
    """A dulwich SSH vendor that runs git commands on channels of one :class:`SshConnection`."""

    def __init__(self, connection: SshConnection, label: str) -> None:
        self._connection = connection
        self._label = label

    def run_command(
        self,
        host: str,
        command: bytes,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_command: str | None = None,
        protocol_version: int | None = None,
    ) -> Any:
        """Run ``command`` (e.g. ``git-upload-pack '/org/images.git'``) on the connection's host.

        ``host``/``username``/``port`` are the connection's own; key and command arguments that
        would configure an ``ssh`` binary are ignored.
        """
        text = command.decode("utf-8")
        env = {}
        if text.startswith("git-upload-pack") and (protocol_version is None or protocol_version >= PROTOCOL_V2):
            env["GIT_PROTOCOL"] = f"version={protocol_version or PROTOCOL_V2}"
        return _GitChannel(self._connection.exec(text, env=env), self._label)


def ssh_client_factory(connection: SshConnection, url: SshUrl, label: str) -> Callable[[], tuple[GitClient, str]]:
    """A factory of dulwich clients for ``url`` whose commands run on ``connection``."""

    def make() -> tuple[GitClient, str]:
        client = SSHGitClient(url.host, port=url.port, username=url.login, vendor=ChannelVendor(connection, label))
        return client, url.path

    return make
