"""Signing keys from hostile or odd files: one clear error, never the key's bytes; cosign's key box format."""

from __future__ import annotations

import base64
import json

import pytest

from lfsreg.errors import UsageError
from lfsreg.signing import cosign_key
from lfsreg.signing.keys import generate, load_private, load_public

# go-securesystemslib's own test vector for its `encrypted` package (what cosign keys are sealed with)
VECTOR = {
    "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": "N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},
    "cipher": {"name": "nacl/secretbox", "nonce": "2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},
    "ciphertext": "SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ==",
}


def _pem(body: dict) -> bytes:
    text = base64.encodebytes(json.dumps(body).encode()).decode()
    return f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{text}-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n".encode()


def test_secretbox_vector():
    assert cosign_key.open_box(VECTOR, "vector", b"supersecret") == b"reallyimportant"
    with pytest.raises(UsageError, match="wrong password"):
        cosign_key.open_box(VECTOR, "vector", b"supersecreT")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b["kdf"]["params"].update(N=1 << 30), "unsupported scrypt parameters"),  # would take any time and memory
        (lambda b: b["cipher"].update(name="aes"), "not encrypted with scrypt and nacl/secretbox"),
        (lambda b: b["cipher"].update(nonce="AAAA"), "damaged"),
        (lambda b: b.update(ciphertext="not base64!"), "damaged"),
    ],
)
def test_hostile_cosign_keys_are_refused_before_any_work(edit, message):
    body = json.loads(json.dumps(VECTOR))
    edit(body)
    with pytest.raises(UsageError, match=message):
        load_private(_pem(body), "key.pem", b"supersecret")


def test_box_that_holds_no_key():
    with pytest.raises(UsageError, match="holds no PKCS#8 key"):
        load_private(_pem(VECTOR), "key.pem", b"supersecret")  # it opens, but "reallyimportant" is no key


def test_unsupported_key_kinds_and_no_key_bytes_in_errors():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 1024)):
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with pytest.raises(UsageError, match="not an ECDSA P-256 or Ed25519 key") as caught:
            load_private(pem, "odd.pem")
        assert pem.decode().splitlines()[1][:20] not in str(caught.value)
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(UsageError, match="not an ECDSA P-256 or Ed25519 public key"):
            load_public(public, "odd.pub")
    assert "PRIVATE" not in repr(generate())
