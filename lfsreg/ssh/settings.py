"""How to authenticate an SSH connection and check the server: keys, passphrase, known hosts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SshSettings:
    """SSH settings; :meth:`resolve` fills what is unset from the environment.

    Attributes:
        identity: a private key file, or the key text itself (as CI secrets are often passed);
            ``--identity`` / ``LFSREG_SSH_KEY``. When set, only this key is offered (like
            OpenSSH's ``IdentitiesOnly``), so a deploy key is never shadowed by an agent's key.
            When unset: the ssh-agent's keys (``SSH_AUTH_SOCK``), then ``~/.ssh/id_rsa``,
            ``id_ecdsa``, ``id_ed25519``.
        passphrase: for an encrypted key (``LFSREG_SSH_PASSPHRASE``); hidden from ``repr``.
        known_hosts: the known-hosts file to check and record in (``--known-hosts`` /
            ``LFSREG_SSH_KNOWN_HOSTS``; default ``~/.ssh/known_hosts``). ``/etc/ssh/ssh_known_hosts``
            is read too.
        accept_new_host_key: record the key of a host seen for the first time instead of refusing
            (OpenSSH's ``StrictHostKeyChecking=accept-new``; ``LFSREG_SSH_ACCEPT_NEW=1``). A changed
            key is refused regardless.
        use_agent: offer the ssh-agent's keys when no identity is given.
        timeout: seconds for the TCP connect, the handshake and authentication.
    """

    identity: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    accept_new_host_key: bool = False
    use_agent: bool = True
    timeout: float = 30.0

    def resolve(self) -> SshSettings:
        """These settings with unset fields taken from ``LFSREG_SSH_*`` variables."""
        env = os.environ
        return SshSettings(
            identity=self.identity or env.get("LFSREG_SSH_KEY") or None,
            passphrase=self.passphrase if self.passphrase is not None else env.get("LFSREG_SSH_PASSPHRASE"),
            known_hosts=self.known_hosts or env.get("LFSREG_SSH_KNOWN_HOSTS") or None,
            accept_new_host_key=self.accept_new_host_key or _truthy(env.get("LFSREG_SSH_ACCEPT_NEW")),
            use_agent=self.use_agent,
            timeout=self.timeout,
        )

    @property
    def known_hosts_file(self) -> str:
        """The known-hosts file in use (the given one, else ``~/.ssh/known_hosts``)."""
        return os.path.expanduser(self.known_hosts or os.path.join("~", ".ssh", "known_hosts"))
