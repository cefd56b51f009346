"""TLS for LFS endpoints: verified by default, a CA bundle option, a clear error otherwise.

The endpoint is the fault-injecting LFS server (tests/fault_lfs/) wrapped in TLS with a
certificate from a throwaway CA; the real servers of tests/test_https.py speak plain HTTP.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fault_lfs import FaultLfsServer

from lfsreg.errors import LfsregError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy


def _cert(tmp_path: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lfsreg test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


@pytest.fixture
def tls_server(tmp_path):
    ca, cert, key = _cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with FaultLfsServer(ssl_context=ctx) as server:
        yield server, ca


def _store(server, tmp_path, **settings):
    policy = RetryPolicy(max_retries=1, sleep=lambda s: None)
    return HttpLfsStore(server.endpoint(), [], ObjectCache(str(tmp_path / "cache")), HttpSettings(policy=policy, timeout=10, **settings))


def test_unknown_ca_is_refused_by_default(tls_server, tmp_path):
    server, _ = tls_server
    data = b"x" * 1000
    server.add_object(data)
    with pytest.raises(LfsregError) as info:
        _store(server, tmp_path).fetch([LfsObject(hashlib.sha256(data).hexdigest(), len(data))])
    assert "certificate is not trusted" in str(info.value)
    assert info.value.hint and "--ca-bundle" in info.value.hint


def test_ca_bundle_option_and_environment(tls_server, tmp_path, monkeypatch):
    server, ca = tls_server
    data = b"y" * 5000
    server.add_object(data)
    obj = LfsObject(hashlib.sha256(data).hexdigest(), len(data))
    store = _store(server, tmp_path, ca_bundle=str(ca))
    store.fetch([obj])
    with store.open(obj) as f:
        assert f.read() == data
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    other = _store(server, tmp_path / "env")
    other.fetch([obj])
