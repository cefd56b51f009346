"""Host key checking as OpenSSH does it, against ``known_hosts`` files (plain, hashed, ``[host]:port``).

* known and equal: go on;
* unknown: refuse, naming the fingerprint (``SHA256:…`` as OpenSSH prints it) and the exact
  line to add; or, with ``accept_new``, record that line and go on;
* known with a different key: refuse, always.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import paramiko

from .errors import HostKeyError

log = logging.getLogger(__name__)
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
_KIND = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}
# host key algorithms that prove possession of a key of each recorded type
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def kind(key: paramiko.PKey) -> str:
    """``ED25519``, ``ECDSA``, ``RSA``: the key type as OpenSSH names it in messages."""
    name = key.get_name()
    return _KIND.get(name, "ECDSA" if name.startswith("ecdsa-") else name)


def host_matches(patterns: list[str], name: str) -> bool:
    """Whether a known_hosts host field (hashed ``|1|salt|hash``, plain, ``*``/``?`` wildcards, ``!``) names ``name``."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern.startswith("|1|"):
            hit = paramiko.HostKeys.hash_host(name, pattern) == pattern
        else:
            regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
            hit = re.fullmatch(regex, name.lower()) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched


def known_hosts_line(name: str, key: paramiko.PKey) -> str:
    """The ``known_hosts`` line for ``key`` of host ``name`` (``host`` or ``[host]:port``)."""
    return f"{name} {key.get_name()} {key.get_base64()}"


@dataclass
class HostKeyChecker:
    """Checks a server's key for ``name`` against ``user_file`` (written on accept-new) and the system file."""

    user_file: str
    accept_new: bool = False
    system_file: str = SYSTEM_KNOWN_HOSTS

    def _entries(self) -> Iterator[tuple[str, str | None, list[str], paramiko.PKey]]:
        """``(file, marker, host patterns, key)`` of every readable line; unreadable lines are skipped."""
        for path in (self.user_file, self.system_file):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                continue
            for line in lines:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                marker = None
                if line.startswith("@"):
                    marker, _, line = line.partition(" ")
                try:
                    entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
                except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError, IndexError):
                    entry = None
                if entry is not None and entry.key is not None:
                    yield path, marker, entry.hostnames, entry.key

    def recorded(self, name: str) -> list[tuple[str, paramiko.PKey]]:
        """Every ``(file, key)`` recorded for ``name``, user file first (``@cert-authority`` lines ignored)."""
        return [(path, key) for path, marker, hosts, key in self._entries() if marker is None and host_matches(hosts, name)]

    def revoked(self, key: paramiko.PKey) -> str | None:
        """The file that lists ``key`` as ``@revoked``, if any."""
        for path, marker, _, known in self._entries():
            if marker == "@revoked" and known.asbytes() == key.asbytes():
                return path
        return None

    def preferred_algorithms(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        """``offered`` host key algorithms with those of recorded key types first, so the check is decisive."""
        first: list[str] = []
        for _, key in self.recorded(name):
            for algo in _ALGORITHMS.get(key.get_name(), (key.get_name(),)):
                if algo in offered and algo not in first:
                    first.append(algo)
        return tuple(first) + tuple(a for a in offered if a not in first)

    def check(self, name: str, key: paramiko.PKey) -> None:
        """Accept ``key`` for host ``name`` or raise :class:`HostKeyError` (see the module doc)."""
        revoked_in = self.revoked(key)
        if revoked_in:
            raise HostKeyError(f"{name}: the server's {kind(key)} host key {key.fingerprint} is marked @revoked in {revoked_in}")
        recorded = self.recorded(name)
        for _, known in recorded:
            if known.get_name() == key.get_name() and known.asbytes() == key.asbytes():
                return
        if recorded:
            path, old = next(((p, k) for p, k in recorded if k.get_name() == key.get_name()), recorded[0])
            raise HostKeyError(
                f"{name}: the SSH host key has CHANGED: the server sent {kind(key)} {key.fingerprint}, "
                f"{path} has {kind(old)} {old.fingerprint}; refusing to connect",
                hint=f"someone may be intercepting the connection; if the server's key really changed, "
                f"remove the line for {name} from {path} and connect again",
            )
        line = known_hosts_line(name, key)
        if not self.accept_new:
            raise HostKeyError(
                f"{name}: unknown SSH host key, {kind(key)} key fingerprint {key.fingerprint}",
                hint=f"if that is the server's fingerprint, add this line to {self.user_file}: {line} "
                "(or accept it on first use with --accept-new-host-key / LFSREG_SSH_ACCEPT_NEW=1)",
            )
        self._record(line)
        log.warning("permanently added %s (%s %s) to %s", name, kind(key), key.fingerprint, self.user_file)

    def _record(self, line: str) -> None:
        directory = os.path.dirname(self.user_file)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        needs_newline = False
        if os.path.exists(self.user_file) and os.path.getsize(self.user_file):
            with open(self.user_file, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        with open(self.user_file, "a", encoding="utf-8") as f:
            f.write(("\n" if needs_newline else "") + line + "\n")
