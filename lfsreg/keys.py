"""Deploy keys: a new ed25519 key pair in OpenSSH format, made with ``cryptography`` (no ``ssh-keygen``).

The private key file is created with mode 0600 (never group- or world-readable, not even for a
moment) and the public key goes beside it as ``FILE.pub``, one line that every
git host accepts as a deploy key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from .errors import LocalStorageError, UsageError

DEFAULT_COMMENT = "lfsreg deploy key"


@dataclass(frozen=True)
class KeyPair:
    """A key pair on disk: the private key file, the ``.pub`` file, the public line and its fingerprint."""

    private_path: str
    public_path: str
    public_line: str
    fingerprint: str


def fingerprint(public_line: str) -> str:
    """``SHA256:…`` of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate(comment: str = DEFAULT_COMMENT) -> tuple[bytes, str]:
    """A new ed25519 key: ``(private key in OpenSSH format, public key line with comment)``."""
    if any(c in comment for c in "\r\n"):
        raise UsageError("the key comment must be one line")
    # here, not at import: cryptography costs ~60 ms, and every command imports this module
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}".rstrip()


def write_keypair(path: str, comment: str = DEFAULT_COMMENT, *, force: bool = False) -> KeyPair:
    """Write a new key to ``path`` (0600) and ``path.pub`` (0644).

    Raises:
        LocalStorageError: ``path`` or ``path.pub`` exists and ``force`` is false (nothing is written).
    """
    public_path = path + ".pub"
    if not force:
        for existing in (path, public_path):
            if os.path.lexists(existing):
                raise LocalStorageError(f"{existing} already exists", hint="choose another --out FILE, or pass --force to replace it")
    private, public_line = generate(comment)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if force and os.path.lexists(path):
        os.unlink(path)  # a new inode, so an old file's looser mode cannot survive
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask said
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    with open(public_path, "w", encoding="ascii") as f:
        f.write(public_line + "\n")
    os.chmod(public_path, 0o644)
    return KeyPair(path, public_path, public_line, fingerprint(public_line))
