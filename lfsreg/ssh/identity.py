"""The keys to offer a server: the one given (a file or the key text), else ssh-agent and ``~/.ssh/id_*``.

Keys are loaded with ``cryptography`` (OpenSSH and PEM formats; ed25519, ECDSA and RSA) and
wrapped as paramiko keys. Nothing here ever logs or shows key material: keys are described
by their source (a path, or "the key given in LFSREG_SSH_KEY") and public fingerprint.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..errors import AuthenticationError, LfsregError, UsageError
from .settings import SshSettings

log = logging.getLogger(__name__)
DEFAULT_KEY_FILES = ("id_rsa", "id_ecdsa", "id_ed25519")  # OpenSSH's order
GIVEN = "the key given with --identity / LFSREG_SSH_KEY"


@dataclass(frozen=True)
class Identity:
    """A key to offer, loaded on demand. ``load`` returns ``None`` to skip it quietly."""

    source: str
    load: Callable[[], paramiko.PKey | None]


def is_key_text(value: str) -> bool:
    """True if ``value`` is a private key itself rather than a path to one."""
    return "PRIVATE KEY-----" in value


def normalise_key_text(text: str) -> str:
    r"""Key text as CI systems hand it over: literal ``\n`` escapes, CRLF, stray indentation fixed."""
    if "\\n" in text and "\n" not in text.strip():
        text = text.replace("\\n", "\n")
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")]
    return "\n".join(lines) + "\n"


def load_private_key(text: str, passphrase: str | None, source: str) -> paramiko.PKey:
    """A paramiko key from OpenSSH- or PEM-format ``text``.

    Raises:
        UsageError: not a private key, or a type other than ed25519, ECDSA or RSA.
        AuthenticationError: encrypted and no (or a wrong) passphrase; the hint names LFSREG_SSH_PASSPHRASE.
    """
    data = text.encode()
    loader = serialization.load_ssh_private_key if b"BEGIN OPENSSH PRIVATE KEY" in data else serialization.load_pem_private_key
    password = passphrase.encode() if passphrase else None
    try:
        try:
            key = loader(data, password)
        except TypeError:  # cryptography: encrypted and no password, or a password for a plain key
            if password is None:
                raise AuthenticationError(f"{source} is encrypted", hint="put its passphrase in LFSREG_SSH_PASSPHRASE") from None
            password = None
            key = loader(data, None)
    except ValueError as exc:
        reason = str(exc).lower()
        # A wrong passphrase on an encrypted PEM key fails cryptography's padding check only
        # 255 times in 256; otherwise the garbage it decrypted fails to parse, with a message
        # about the format. An encrypted key given a passphrase that does not open it is a
        # wrong passphrase either way.
        encrypted = b"ENCRYPTED" in data
        if password is not None and (encrypted or any(w in reason for w in ("checksum", "password", "decrypt"))):
            raise AuthenticationError(f"{source}: wrong passphrase", hint="check LFSREG_SSH_PASSPHRASE") from None
        raise UsageError(f"{source} is not a private key in OpenSSH or PEM format") from None
    except LfsregError:
        raise
    except Exception:  # cryptography's UnsupportedAlgorithm and friends: never echo the data
        raise UsageError(f"{source} is not a supported private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        cls: type[paramiko.PKey] = paramiko.Ed25519Key
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        cls = paramiko.ECDSAKey
    elif isinstance(key, rsa.RSAPrivateKey):
        cls = paramiko.RSAKey
    else:
        raise UsageError(f"{source}: unsupported key type {type(key).__name__}; use ed25519, ECDSA or RSA")
    # paramiko reads fewer formats than cryptography (no PKCS#8): hand it OpenSSH format, in memory only
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    try:
        return cls.from_private_key(io.StringIO(plain.decode()))
    except (paramiko.SSHException, ValueError):
        raise UsageError(f"{source} could not be loaded") from None


def _read_key_file(path: str, source: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"identity file {path} not found") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not a private key in OpenSSH or PEM format") from None


def _default_file(path: str, passphrase: str | None) -> Callable[[], paramiko.PKey | None]:
    def load() -> paramiko.PKey | None:
        try:
            return load_private_key(_read_key_file(path, path), passphrase, path)
        except (LfsregError, OSError) as exc:
            log.debug("skipping %s: %s", path, exc)
            return None

    return load


def _returning(key: paramiko.PKey) -> Callable[[], paramiko.PKey | None]:
    return lambda: key


def identities(settings: SshSettings) -> Iterator[Identity]:
    """The keys to offer, in order (see :class:`SshSettings`); loading is deferred until offered."""
    if settings.identity:
        value = settings.identity
        if is_key_text(value):
            text = normalise_key_text(value)
            yield Identity(GIVEN, lambda: load_private_key(text, settings.passphrase, GIVEN))
        else:
            path = os.path.expanduser(value.strip())
            yield Identity(path, lambda: load_private_key(_read_key_file(path, path), settings.passphrase, path))
        return
    if settings.use_agent and os.environ.get("SSH_AUTH_SOCK"):
        try:
            agent_keys = paramiko.Agent().get_keys()
        except (paramiko.SSHException, OSError) as exc:
            log.debug("ssh-agent not usable: %s", exc)
            agent_keys = ()
        for i, key in enumerate(agent_keys):
            yield Identity(f"ssh-agent key {i + 1} ({key.fingerprint})", _returning(key))
    ssh_dir = os.path.join(os.path.expanduser("~"), ".ssh")
    for name in DEFAULT_KEY_FILES:
        path = os.path.join(ssh_dir, name)
        if os.path.isfile(path):
            yield Identity(path, _default_file(path, settings.passphrase))
