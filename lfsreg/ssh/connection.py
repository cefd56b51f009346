"""One authenticated SSH connection (paramiko, in-process: no ``ssh`` binary), shared by git and LFS.

Each connection costs a key exchange and an authentication (~0.5 s on a busy host), so one
lfsreg operation opens at most one: ``git-upload-pack``, ``git-receive-pack`` and
``git-lfs-authenticate`` each run on their own channel of it. The connection is opened on
first use and closed when the object is collected (or at exit).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import weakref

import paramiko

from .errors import KEY_HINT, SshAuthError, SshConnectionLost, SshError
from .hostkeys import HostKeyChecker
from .identity import identities
from .settings import SshSettings
from .url import SshUrl

log = logging.getLogger(__name__)
WINDOW = 16 << 20  # bytes in flight per channel: git packs and LFS objects stream without stalls
KEEPALIVE = 30


class Channel:
    """A command running on the server: a byte stream both ways, plus stderr and the exit status."""

    def __init__(self, chan: paramiko.Channel, command: str) -> None:
        self._chan = chan
        self.command = command
        self.received = 0

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, fewer only at end of stream."""
        parts = []
        want = n
        while want > 0:
            data = self._chan.recv(min(want, 1 << 20))
            if not data:
                break
            parts.append(data)
            want -= len(data)
        out = b"".join(parts)
        self.received += len(out)
        return out

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes as they arrive (``b""`` at end of stream)."""
        data = self._chan.recv(n)
        self.received += len(data)
        return data

    def write(self, data: bytes) -> None:
        """Send all of ``data``; :class:`ConnectionResetError` if the connection is gone."""
        try:
            self._chan.sendall(data)
        except EOFError:  # paramiko's word for a transport that died under the write
            raise ConnectionResetError(f"{self.command.split()[0]}: the SSH connection was cut") from None

    def can_read(self) -> bool:
        """True if data is waiting."""
        return self._chan.recv_ready()

    def close_stdin(self) -> None:
        """Send EOF."""
        self._chan.shutdown_write()

    def stderr(self) -> bytes:
        """Everything the command wrote on stderr (waits for the stream to end)."""
        chunks: list[bytes] = []
        while True:
            data = self._chan.recv_stderr(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def exit_status(self) -> int | None:
        """The command's exit status (waits for it); ``None`` if the server sent none."""
        status = self._chan.recv_exit_status()
        return None if status == -1 else status

    def close(self) -> None:
        """Close the channel (the connection stays open); closing one whose connection died is no error."""
        with contextlib.suppress(EOFError, OSError):
            self._chan.close()


class SshConnection:
    """A lazily opened, authenticated SSH connection to ``url``'s host."""

    def __init__(self, url: SshUrl, settings: SshSettings) -> None:
        self.url = url
        self.settings = settings.resolve()
        self.label = f"{url.host}" + (f":{url.port}" if url.port else "")
        self._lock = threading.Lock()
        self._transport: paramiko.Transport | None = None
        self.connects = 0  # how many times a connection was opened (one per operation, normally)

    def _open(self) -> paramiko.Transport:
        url, settings = self.url, self.settings
        port = url.port or 22
        try:
            sock = socket.create_connection((url.host, port), timeout=settings.timeout)
        except (BrokenPipeError, ConnectionResetError):
            # the server (or a proxy in front of it) took the connection and dropped it at once:
            # Linux may report that from connect() itself (seen with a proxy that cut at byte 0)
            raise self._closed("the SSH handshake") from None
        except OSError as exc:
            raise SshError(
                f"{url.host}:{port}: cannot connect: {exc.strerror or exc}", hint="check the host and port in the URL, and the network"
            ) from None
        # small requests (exec, EOF, pkt-lines) must not wait for delayed ACKs (Nagle): ~40 ms each
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock, default_window_size=WINDOW)
        transport.banner_timeout = settings.timeout
        transport.auth_timeout = settings.timeout
        try:
            checker = HostKeyChecker(settings.known_hosts_file, settings.accept_new_host_key)
            options = transport.get_security_options()
            options.key_types = checker.preferred_algorithms(url.known_hosts_name, tuple(options.key_types))
            try:
                transport.start_client(timeout=settings.timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise self._lost(exc, "the SSH handshake") or SshError(
                    f"{self.label}: SSH handshake failed: {exc}", hint="is this an SSH server? check the port"
                ) from None
            try:
                server_key = transport.get_remote_server_key()
            except paramiko.SSHException:  # start_client returns at its timeout without a word
                raise (self._silent("the SSH handshake") if transport.is_active() else self._closed("the SSH handshake")) from None
            checker.check(url.known_hosts_name, server_key)
            self._authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(KEEPALIVE)
        self.connects += 1
        log.debug("%s: connected and authenticated as %s", self.label, url.login)
        weakref.finalize(self, transport.close)
        return transport

    def _authenticate(self, transport: paramiko.Transport) -> None:
        user = self.url.login
        tried: list[str] = []
        for identity in identities(self.settings):
            key = identity.load()
            if key is None:
                continue
            tried.append(identity.source)
            try:
                transport.auth_publickey(user, key)
            except paramiko.BadAuthenticationType:
                raise SshAuthError(f"{self.label}: the server does not accept SSH keys for {user}", hint=KEY_HINT) from None
            except paramiko.AuthenticationException as exc:
                # paramiko reports a connection that died (or went silent) under the
                # authentication as a refusal ("Authentication failed." / "...timeout.")
                # (a server that hangs up after refusing several keys, MaxAuthTries, did refuse them)
                if (not transport.is_active() and len(tried) == 1) or "timeout" in str(exc).lower():
                    raise self._lost(exc, "authentication") or self._closed("authentication") from None
                if not transport.is_active():
                    break
                log.debug("%s: key %s refused", self.label, identity.source)
                continue
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise self._lost(exc, "authentication") or self._closed("authentication") from None
            if transport.is_authenticated():
                return
        if not tried:
            raise SshAuthError(
                f"{self.label}: no SSH key to offer",
                hint="pass --identity FILE or set LFSREG_SSH_KEY (a key file, or the key itself); "
                "none was found in ~/.ssh and no ssh-agent is running",
            )
        raise SshAuthError(f"{self.label}: SSH authentication refused for user {user} (offered: {', '.join(tried)})", hint=KEY_HINT)

    def _silent(self, stage: str) -> SshConnectionLost:
        return SshConnectionLost(f"{self.label}: no answer from {self.url.host} within {self.settings.timeout:g} s during {stage}")

    def _closed(self, stage: str) -> SshConnectionLost:
        return SshConnectionLost(
            f"{self.label}: connection closed by {self.url.host} during {stage}",
            hint="is this an SSH server? check the port" if stage == "the SSH handshake" else None,
        )

    def _lost(self, exc: BaseException, stage: str) -> SshConnectionLost | None:
        """The error for a connection that broke during ``stage``, naming how; ``None`` if ``exc`` is another failure.

        paramiko words a closed connection as an empty ``EOFError`` or as "Error reading SSH
        protocol banner" (the cause tells a close from a silence).
        """
        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        text = " ".join(str(e) for e in chain).lower()
        if any(isinstance(e, TimeoutError) for e in chain) or "timeout" in text or "timed out" in text:
            return self._silent(stage)
        if any(isinstance(e, ConnectionResetError) for e in chain):
            return SshConnectionLost(f"{self.label}: connection reset by {self.url.host} during {stage}")
        if any(isinstance(e, (EOFError, ConnectionError)) for e in chain) or not str(exc).strip():
            return self._closed(stage)
        return None

    def transport(self) -> paramiko.Transport:
        """The open connection (opened now if needed, or again if it dropped)."""
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                if self._transport is not None:
                    log.debug("%s: connection dropped; reconnecting", self.label)
                self._transport = self._open()
            return self._transport

    def exec(self, command: str, *, env: dict[str, str] | None = None) -> Channel:
        """Start ``command`` on the server in a new channel of the connection.

        A connection the server dropped while it sat idle (a long compression between a fetch
        and a push) is reopened once.

        Raises:
            SshConnectionLost: the connection broke (or went silent) while opening the channel
                or asking for the command; worth a retry.
            SshError: the server refused the channel or the command (one line naming the stage).
        """
        name = command.split()[0]
        for attempt in (1, 2):
            transport = self.transport()
            stage = f"the opening of a channel for {name}"
            try:
                chan = transport.open_session(timeout=self.settings.timeout)
                stage = f"the exec of {name}"
                for key, value in (env or {}).items():
                    chan.set_environment_variable(key, value)  # servers without AcceptEnv ignore it
                self._exec_within(chan, command)
                # a read that waits longer than this raises TimeoutError (a stall, retried like a
                # cut), as an HTTP read does; without it a silent server hangs the command
                chan.settimeout(self.settings.timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                if attempt == 1 and not transport.is_active():
                    log.debug("%s: connection lost (%s); reconnecting", self.label, exc)
                    continue
                raise self._exec_failed(exc, stage, name, transport) from None
            log.debug("%s: running %s", self.label, command)
            return Channel(chan, command)
        raise AssertionError("unreachable")

    def _exec_within(self, chan: paramiko.Channel, command: str) -> None:
        """``chan.exec_command(command)``, or :class:`TimeoutError` if the server does not answer within the timeout.

        paramiko waits for the answer to an exec request without a bound: a server (or a path)
        gone silent there would hang the command for as long as it held the connection.
        """
        expired = threading.Event()

        def give_up() -> None:
            expired.set()
            # wakes the wait for the answer; a connection already gone has ended the wait itself
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                chan.close()

        timer = threading.Timer(self.settings.timeout, give_up)
        timer.daemon = True
        timer.start()
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError):
            if not expired.is_set():
                raise
        finally:
            timer.cancel()
        if expired.is_set():
            raise TimeoutError(f"no answer to the exec request within {self.settings.timeout:g} s")

    def _exec_failed(self, exc: BaseException, stage: str, name: str, transport: paramiko.Transport) -> SshError:
        """The one-line error for ``exc`` raised during ``stage`` (opening the channel for, or the exec of, ``name``).

        paramiko says little: a refused channel is a :class:`paramiko.ChannelException` whose
        text is the RFC 4254 reason code's name, a refused exec request is "Channel closed.",
        and a connection that died under either is often an ``EOFError`` without any text.
        """
        said = str(exc).strip().rstrip(".")
        if isinstance(exc, paramiko.ChannelException):  # an answer: the channel is refused
            said = (exc.text or "").strip().lower() or f"reason code {exc.code}"
        elif "timeout" in said.lower() or isinstance(exc, TimeoutError):
            return self._silent(stage)
        elif not transport.is_active():
            return self._lost(exc, stage) or self._closed(stage)
        elif said.lower() not in ("", "channel closed"):  # not the answer to a request: say it as paramiko did
            return SshError(f"{self.label}: {stage} failed: {said}", hint="check the URL and the key; retry later if the host is busy")
        else:  # the server answered the request with a failure
            said = ""
        if stage.startswith("the exec"):
            hint = "the server runs no commands for this key or account (a forced command, a restricted shell): check the URL and the key"
        else:
            hint = "the server allows no (more) sessions for this connection or key (sshd: MaxSessions); ask the host's administrator"
        return SshError(f"{self.label}: {stage} was refused by the server" + (f" ({said})" if said else ""), hint=hint)

    def run(self, command: str) -> tuple[int | None, bytes, bytes]:
        """Run ``command`` to completion with empty stdin: ``(exit status, stdout, stderr)``."""
        chan = self.exec(command)
        try:
            chan.close_stdin()
            out = []
            while data := chan.recv(65536):
                out.append(data)
            err = chan.stderr()
            return chan.exit_status(), b"".join(out), err
        except TimeoutError:  # the channel's read timeout: a stall, retried like a cut
            raise self._silent(command.split()[0]) from None
        finally:
            chan.close()

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
