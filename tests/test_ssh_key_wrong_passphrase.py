"""A wrong passphrase on an encrypted PEM key is named as such, whatever the decrypted bytes look like.

cryptography reports a wrong passphrase on a PKCS#8 key as "Incorrect password" only when the
decrypted garbage fails its padding check (255 times in 256); otherwise as a key it "could not
deserialize". ``load_private_key`` said "not a private key" in that case (seen once in a full run).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lfsreg.errors import AuthenticationError
from lfsreg.ssh.identity import load_private_key


def _padding_passing_wrong_passphrase(pem: bytes) -> str:
    """A wrong passphrase whose decryption passes the padding check (found by trying; ~1 in 256)."""
    for i in range(20_000):
        candidate = f"wrong-{i}"
        try:
            serialization.load_pem_private_key(pem, candidate.encode())
        except ValueError as exc:
            if "password" not in str(exc).lower():
                return candidate
    raise AssertionError("no wrong passphrase got past the padding check in 20,000 tries")


def test_wrong_passphrase_that_decrypts_to_garbage_is_still_a_wrong_passphrase() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret-pass")
    )
    wrong = _padding_passing_wrong_passphrase(pem)
    with pytest.raises(AuthenticationError, match="wrong passphrase") as info:
        load_private_key(pem.decode(), wrong, "the key")
    assert "LFSREG_SSH_PASSPHRASE" in info.value.hint
    assert wrong not in str(info.value)
