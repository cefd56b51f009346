"""Private keys written by ``cosign generate-key-pair``: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY``.

The PEM body is JSON (go-securesystemslib's ``encrypted`` package)::

    {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": "<base64>"},
     "cipher": {"name": "nacl/secretbox", "nonce": "<base64, 24 bytes>"},
     "ciphertext": "<base64>"}

The password (cosign's ``COSIGN_PASSWORD``; here ``LFSREG_KEY_PASSWORD``) is stretched with
scrypt (``cryptography``) into a 32-byte key that opens the NaCl secretbox (PyNaCl, which
paramiko already depends on); inside is the private key as PKCS#8 DER. Only the scrypt
parameters that library writes are accepted (N = 2^15, 2^16 or 2^17, r = 8, p = 1): others
could make the key derivation take any time or memory a hostile file asks for.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import UsageError

PEM_TYPES = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
_SCRYPT_PARAMS = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}


def is_cosign_key(data: bytes) -> bool:
    """True if ``data`` is a PEM block of cosign's encrypted private key type."""
    return any(b"-----BEGIN " + kind + b"-----" in data for kind in PEM_TYPES)


def _body(data: bytes, what: str) -> dict[str, Any]:
    for kind in PEM_TYPES:
        begin, end = b"-----BEGIN " + kind + b"-----", b"-----END " + kind + b"-----"
        if begin in data:
            inner = data.split(begin, 1)[1].split(end, 1)
            if len(inner) != 2:
                break
            try:
                obj = json.loads(base64.b64decode(b"".join(inner[0].split()), validate=True))
            except (ValueError, binascii.Error):
                break
            if isinstance(obj, dict):
                return obj
    raise UsageError(f"{what}: a damaged cosign private key")


def _b64(obj: Any, what: str) -> bytes:
    if not isinstance(obj, str):
        raise UsageError(f"{what}: a damaged cosign private key")
    try:
        return base64.b64decode(obj, validate=True)
    except (ValueError, binascii.Error):
        raise UsageError(f"{what}: a damaged cosign private key") from None


def decrypt(data: bytes, what: str, password: bytes | None) -> Any:
    """The ``cryptography`` private key inside cosign's encrypted PEM ``data``.

    Raises:
        UsageError: a damaged file, unsupported parameters, no password or a wrong one.
    """
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    der = open_box(_body(data, what), what, password)
    try:
        return load_der_private_key(der, None)
    except (ValueError, TypeError):
        raise UsageError(f"{what}: the cosign private key holds no PKCS#8 key") from None
    except Exception:  # an unsupported algorithm and the like: one line, no key bytes
        raise UsageError(f"{what}: the cosign private key holds a key lfsreg cannot read") from None


def open_box(body: dict[str, Any], what: str, password: bytes | None) -> bytes:
    """The plaintext of a go-securesystemslib ``encrypted`` document (its JSON, decoded)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    kdf, cipher = body.get("kdf"), body.get("cipher")
    if not isinstance(kdf, dict) or not isinstance(cipher, dict) or not isinstance(kdf.get("params"), dict):
        raise UsageError(f"{what}: a damaged cosign private key")
    params = kdf["params"]
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise UsageError(f"{what}: a cosign private key not encrypted with scrypt and nacl/secretbox")
    if (params.get("N"), params.get("r"), params.get("p")) not in _SCRYPT_PARAMS:
        raise UsageError(f"{what}: unsupported scrypt parameters in a cosign private key")
    salt, nonce, sealed = _b64(kdf.get("salt"), what), _b64(cipher.get("nonce"), what), _b64(body.get("ciphertext"), what)
    if len(nonce) != SecretBox.NONCE_SIZE:
        raise UsageError(f"{what}: a damaged cosign private key")
    if not password:
        raise UsageError(f"{what}: the cosign key is encrypted; set LFSREG_KEY_PASSWORD to its password")
    secret = Scrypt(salt=salt, length=SecretBox.KEY_SIZE, n=params["N"], r=params["r"], p=params["p"]).derive(password)
    try:
        return bytes(SecretBox(secret).decrypt(sealed, nonce))
    except CryptoError:
        raise UsageError(f"{what}: wrong password for the cosign private key") from None
