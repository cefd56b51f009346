"""OpenSSL as an independent oracle of lfsreg's signatures, both directions (cosign's EXAMPLES.md does the same).

* ``openssl dgst -sha256 -verify`` (ECDSA P-256) and ``openssl pkeyutl -verify -rawin`` (Ed25519)
  accept what ``lfsreg sign`` stored: the payload's bytes from the tree, the base64 signature
  from the annotation, the public key ``lfsreg keygen --sign`` wrote.
* ``lfsreg pull --verify-key`` accepts a signature OpenSSL made, with an OpenSSL-made key, over a
  payload in cosign's format; and ``lfsreg sign`` signs with OpenSSL-made private keys (PKCS#8,
  SEC1) that OpenSSL's public key then verifies.
"""

from __future__ import annotations

import base64

import pytest
from conftest import assert_ok, run_cli
from signing_help import digest_of, openssl, put_signature_image, signed_registry, stored_signatures

from lfsreg.signing import cosign


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return signed_registry(tmp_path_factory.mktemp("ossl") / "reg.git", ("app.oci:1.0", "acme/app:1.0"), ("tool.oci", "acme/tool:2.0"))


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_openssl_verifies_lfsreg_signatures(repo, tmp_path, key_type):
    assert_ok(run_cli("keygen", "--sign", "--type", key_type, "--out", tmp_path / "k"))
    assert_ok(run_cli("sign", repo, "acme/app:1.0", "--key", tmp_path / "k"))
    digest = digest_of(repo, "acme/app:1.0")
    [(payload, signature)] = [(p, s) for p, s in stored_signatures(repo, "acme/app", digest) if _ours(tmp_path / "k.pub", p, s)]
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig").write_bytes(signature)
    if key_type == "ecdsa-p256":
        proc = openssl("dgst", "-sha256", "-verify", tmp_path / "k.pub", "-signature", tmp_path / "sig", tmp_path / "payload")
    else:
        proc = openssl(
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            tmp_path / "k.pub",
            "-rawin",
            "-in",
            tmp_path / "payload",
            "-sigfile",
            tmp_path / "sig",
        )
    assert proc.returncode == 0 and b"Verified" in proc.stdout + proc.stderr, proc
    (tmp_path / "payload").write_bytes(payload.replace(b"acme/app", b"acme/xyz"))  # and not any other bytes
    proc = openssl("dgst", "-sha256", "-verify", tmp_path / "k.pub", "-signature", tmp_path / "sig", tmp_path / "payload")
    assert proc.returncode != 0


def _ours(public, payload, signature):
    import lfsreg

    [key] = lfsreg.api.load_public_keys([str(public)])
    return key.verify(signature, payload)


def test_lfsreg_verifies_openssl_signatures(repo, tmp_path):
    key, pub = tmp_path / "ossl.pem", tmp_path / "ossl.pub"
    assert openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key).returncode == 0
    assert openssl("pkey", "-in", key, "-pubout", "-out", pub).returncode == 0
    digest = digest_of(repo, "acme/tool:2.0")
    payload = cosign.payload("acme/tool", digest)
    (tmp_path / "payload").write_bytes(payload)
    proc = openssl("dgst", "-sha256", "-sign", key, "-out", tmp_path / "sig", tmp_path / "payload")
    assert proc.returncode == 0, proc
    put_signature_image(repo, "acme/tool", digest, [(payload, base64.b64encode((tmp_path / "sig").read_bytes()).decode())])
    assert_ok(run_cli("pull", repo, "acme/tool:2.0", "--verify-key", pub, "-o", f"oci:{tmp_path / 'out'}"))
    assert (tmp_path / "out" / "index.json").exists()


@pytest.mark.parametrize("make", [["genpkey", "-algorithm", "ED25519"], ["ecparam", "-name", "prime256v1", "-genkey", "-noout"]])
def test_lfsreg_signs_with_openssl_made_keys(repo, tmp_path, make):
    key, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    assert openssl(*make, "-out", key).returncode == 0
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----" if "genpkey" in make else b"-----BEGIN EC PRIVATE KEY-----")
    assert openssl("pkey", "-in", key, "-pubout", "-out", pub).returncode == 0
    assert_ok(run_cli("sign", repo, "acme/tool:2.0", "--key", key))
    assert_ok(run_cli("pull", repo, "acme/tool:2.0", "--verify-key", pub, "-o", f"oci:{tmp_path / 'out'}"))
