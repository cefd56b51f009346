"""Signing keys: ECDSA P-256 (cosign's default) and Ed25519, in the PEM files OpenSSL and cosign read.

* Private keys are written as PKCS#8 (``PRIVATE KEY``, or ``ENCRYPTED PRIVATE KEY`` under a
  password), mode 0600. Read: those two, SEC1 ``EC PRIVATE KEY`` (``openssl ecparam -genkey``)
  and cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` (:mod:`.cosign_key`).
* Public keys are PKIX ``PUBLIC KEY`` PEM (``cosign verify --key`` and ``openssl dgst -verify``
  read them); a key's id is ``sha256:`` of its DER SubjectPublicKeyInfo.
* A signature is over the exact bytes given: ECDSA with SHA-256, DER-encoded (what
  ``openssl dgst -sha256 -sign`` and cosign write), or plain Ed25519.

Key material never appears in an error message: errors name the file (or variable) only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from ..errors import LocalStorageError, UsageError

ECDSA_P256 = "ecdsa-p256"
ED25519 = "ed25519"
ALGORITHMS = (ECDSA_P256, ED25519)
DEFAULT_ALGORITHM = ECDSA_P256
#: Key files are small; anything larger is not a key (and is not read whole).
MAX_KEY_FILE = 64 << 10


def _crypto() -> Any:
    # here, not at import: cryptography costs ~60 ms, and most commands never sign
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    return serialization, ec, ed25519


def _algorithm(key: Any) -> str | None:
    _, ec, ed25519 = _crypto()
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return ECDSA_P256 if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return ED25519
    return None


@dataclass(frozen=True)
class PublicKey:
    """A public key that verifies signatures: its algorithm, PKIX PEM text and id."""

    algorithm: str
    pem: str
    key_id: str  # "sha256:<hex of the DER SubjectPublicKeyInfo>"
    _key: Any

    def verify(self, signature: bytes, payload: bytes) -> bool:
        """True if ``signature`` is this key's over exactly ``payload``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes

        _, ec, _ = _crypto()
        try:
            if self.algorithm == ECDSA_P256:
                self._key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
            else:
                self._key.verify(signature, payload)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class PrivateKey:
    """A private signing key and its public half. Its ``repr`` shows no key material."""

    algorithm: str
    public: PublicKey
    _key: Any

    def __repr__(self) -> str:
        return f"PrivateKey({self.algorithm}, {self.public.key_id})"

    def sign(self, payload: bytes) -> bytes:
        """The signature over exactly ``payload`` (ECDSA: DER, SHA-256; Ed25519: 64 bytes)."""
        from cryptography.hazmat.primitives import hashes

        _, ec, _ = _crypto()
        if self.algorithm == ECDSA_P256:
            return bytes(self._key.sign(payload, ec.ECDSA(hashes.SHA256())))
        return bytes(self._key.sign(payload))

    def pkcs8(self, password: bytes | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with ``password`` (best available scheme) if given."""
        serialization, _, _ = _crypto()
        encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        return bytes(self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


def _public(key: Any) -> PublicKey:
    serialization, _, _ = _crypto()
    algorithm = _algorithm(key)
    assert algorithm is not None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return PublicKey(algorithm, pem, "sha256:" + hashlib.sha256(der).hexdigest(), key)


def private_key(key: Any, what: str) -> PrivateKey:
    """Wrap a ``cryptography`` private key; :class:`UsageError` for a kind lfsreg does not sign with."""
    algorithm = _algorithm(key)
    if algorithm is None:
        raise UsageError(f"{what}: not an ECDSA P-256 or Ed25519 key (the kinds cosign signs images with)")
    return PrivateKey(algorithm, _public(key.public_key()), key)


def generate(algorithm: str = DEFAULT_ALGORITHM) -> PrivateKey:
    """A new signing key."""
    _, ec, ed25519 = _crypto()
    if algorithm == ECDSA_P256:
        return private_key(ec.generate_private_key(ec.SECP256R1()), "new key")
    if algorithm == ED25519:
        return private_key(ed25519.Ed25519PrivateKey.generate(), "new key")
    raise UsageError(f"unknown key type {algorithm!r} (choose {' or '.join(ALGORITHMS)})")


def load_private(data: bytes, what: str, password: bytes | None = None) -> PrivateKey:
    """A private key from PEM ``data`` (see the module docstring); ``what`` names its source in errors.

    Raises:
        UsageError: not a PEM private key, a key kind lfsreg does not sign with, an encrypted
            key without ``password`` or with a wrong one.
    """
    from . import cosign_key

    if cosign_key.is_cosign_key(data):
        return private_key(cosign_key.decrypt(data, what, password), what)
    serialization, _, _ = _crypto()
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not password:
        raise UsageError(f"{what}: the key is encrypted; set LFSREG_KEY_PASSWORD to its password")
    try:
        key = serialization.load_pem_private_key(data, password if encrypted else None)
    except (ValueError, TypeError):
        reason = "wrong password, or not a PEM private key" if encrypted else "not a PEM private key"
        raise UsageError(f"{what}: {reason}") from None  # from None: the key's bytes stay out of tracebacks
    except Exception:  # cryptography's unsupported-algorithm errors and the like: still one line, no key bytes
        raise UsageError(f"{what}: not a private key lfsreg can read") from None
    return private_key(key, what)


def load_public(data: bytes, what: str) -> PublicKey:
    """A public key from a PKIX ``PUBLIC KEY`` PEM; :class:`UsageError` if it is not one lfsreg verifies with."""
    serialization, _, _ = _crypto()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise UsageError(f"{what}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    except Exception:
        raise UsageError(f"{what}: not a public key lfsreg can read") from None
    if _algorithm(key) is None:
        raise UsageError(f"{what}: not an ECDSA P-256 or Ed25519 public key")
    return _public(key)


def read_key_file(path: str) -> bytes:
    """The bytes of a key file (at most :data:`MAX_KEY_FILE`); :class:`UsageError` naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"{path}: too large for a key file")
    return data


@dataclass(frozen=True)
class SigningKeyPair:
    """A signing key pair written to disk."""

    private_path: str
    public_path: str
    algorithm: str
    key_id: str
    encrypted: bool


def write_signing_keypair(
    path: str, algorithm: str = DEFAULT_ALGORITHM, password: bytes | None = None, *, force: bool = False
) -> SigningKeyPair:
    """Write a new key to ``path`` (PKCS#8, mode 0600; encrypted if ``password``) and its public key to ``path.pub``.

    Raises:
        LocalStorageError: ``path`` or ``path.pub`` exists and ``force`` is false (nothing is written).
        UsageError: an unknown ``algorithm``.
    """
    key = generate(algorithm)
    public_path = path + ".pub"
    if not force:
        for existing in (path, public_path):
            if os.path.lexists(existing):
                raise LocalStorageError(f"{existing} already exists", hint="choose another --out FILE, or pass --force to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if force and os.path.lexists(path):
        os.unlink(path)  # a new inode: an old file's looser mode cannot survive
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask said
    with os.fdopen(fd, "wb") as f:
        f.write(key.pkcs8(password))
    with open(public_path, "w", encoding="ascii") as f:
        f.write(key.public.pem)
    os.chmod(public_path, 0o644)
    return SigningKeyPair(path, public_path, key.algorithm, key.public.key_id, bool(password))
