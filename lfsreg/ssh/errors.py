"""SSH errors, and the reading of a failed server command's stderr into one of them.

Git hosts word refusals differently (GitHub: ``ERROR: Repository not found.``, ``The key you
are authenticating with has been marked as read only.``; GitLab: ``This deploy key does not
have write access to this project.``; a shell: ``command not found``), so the first
meaningful stderr line is matched against the common phrasings and quoted in the message.
Messages never contain key material: only host names, fingerprints and the server's words.
"""

from __future__ import annotations

import re

from ..errors import (
    AuthenticationError,
    LfsregError,
    PermissionDeniedError,
    ProtocolError,
    RepositoryNotFound,
    RetriableError,
    UnreachableError,
)

KEY_HINT = (
    "add the key's public half to the repository as a deploy key with write access (see `lfsreg keygen`), "
    "or choose the key with --identity / LFSREG_SSH_KEY"
)


# The SSH failures, as members of the library's error tree (lfsreg.errors), so callers catch
# one family whatever the transport.


class SshError(UnreachableError):
    """The SSH server could not be reached, or the connection broke (connect, handshake, exec)."""


class SshConnectionLost(SshError, RetriableError):
    """The connection broke (closed, reset, or silent past the timeout) during the handshake or authentication: worth a retry."""


class SshAuthError(AuthenticationError):
    """The server refused every key offered."""


class HostKeyError(AuthenticationError):
    """The server failed to authenticate itself: its host key is unknown, revoked or differs from the recorded one."""


class SshPermissionError(PermissionDeniedError):
    """The key may read but not write (or not even read) the repository."""


class CommandMissing(ProtocolError):
    """The server does not offer the command (exit 127 or ``not found``): e.g. no git-lfs-authenticate."""


__all__ = [
    "KEY_HINT",
    "CommandMissing",
    "HostKeyError",
    "RepositoryNotFound",
    "SshAuthError",
    "SshConnectionLost",
    "SshError",
    "SshPermissionError",
    "command_failed",
    "first_line",
]


_READ_ONLY = re.compile(
    r"read[ -]only|write access|not allowed to (push|write|upload)|permission to \S+ denied|insufficient permission"
    r"|does not have write|cannot (push|write)|not authorized to (push|write)|no write",
    re.I,
)
_NOT_FOUND = re.compile(r"not found|does not exist|does not appear to be a git repository|no such (file|repo)|not a git repository", re.I)
_MISSING_CMD = re.compile(r"command not found|unknown command|invalid command|not recognized|unsupported command|not supported", re.I)


def first_line(stderr: bytes) -> str:
    """The first non-empty stderr line, without ``ERROR:``/``fatal:`` prefixes, cut to 200 characters."""
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = re.sub(r"^\s*(remote:\s*)?(ERROR|fatal|error)\s*:\s*", "", raw.strip(), flags=re.I).strip()
        if line:
            return line[:200]
    return ""


def command_failed(label: str, command: str, status: int | None, stderr: bytes, *, writing: bool) -> LfsregError:
    """The error for server command ``command`` (its name only) that exited ``status`` with ``stderr``.

    Args:
        label: the remote, for the message.
        command: the command's name, e.g. ``git-receive-pack``.
        status: its exit status (``None`` if the server sent none).
        stderr: what it wrote on stderr.
        writing: whether the command writes (push, LFS upload): refusals then mean "read-only key".
    """
    said = first_line(stderr)
    quoted = f": the server said: {said}" if said else f" (exit status {status})"
    name = command.split()[0]
    if status == 127 or _MISSING_CMD.search(said) or (name in said and "not found" in said.lower()):
        return CommandMissing(f"{label}: the server does not offer {name}{quoted}")
    if _READ_ONLY.search(said) or (writing and re.search(r"denied|forbidden|not allowed", said, re.I)):
        return SshPermissionError(
            f"{label}: permission denied: this key cannot write to the repository{quoted}",
            hint="give the deploy key write access (GitHub: 'Allow write access'; GitLab: 'Grant write permissions to this key'; "
            "Gitea: 'Enable Write Access'), or use a key that has it",
        )
    if _NOT_FOUND.search(said) or re.search(r"denied|forbidden|not allowed", said, re.I):
        return RepositoryNotFound(
            f"{label}: repository not found, or this key has no access to it{quoted}",
            hint="check the path in the URL, and that this key is added to this repository (a deploy key works for one repository only)",
        )
    return ProtocolError(f"{label}: {name} failed on the server{quoted}")
