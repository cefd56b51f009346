"""HTTPS in front of the real peers: nginx terminating TLS with certificates of a throwaway CA.

PYTEST_DONT_REWRITE

:func:`make_certs` generates, in-process with ``cryptography``, a test CA, a server
certificate it signed for ``127.0.0.1`` and ``localhost``, an expired one from the same CA,
and one from another CA. :func:`start_tls_front` runs nginx with one of them on a free port,
proxying everything to an upstream (``git_http_server``: stock ``git http-backend`` + giftless
on one base URL). The upstream sees ``X-Forwarded-Proto: https`` (giftless then hands out
``https://`` hrefs) and the client's ``Host``, so every URL a client is given points back
through the front. Two redirects: ``/moved/PATH`` answers ``307`` to ``PATH`` on the same
host (a moved repository), and an LFS object download asked of ``127.0.0.1`` answers ``307``
to the same URL on ``localhost`` (storage on another host name, which the client must verify
again; the signed href needs no credentials).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from peers.nginx import nginx_config, nginx_starter, proxy_block
from peers.procs import HOST, started

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey


@dataclass(frozen=True)
class ServerCert:
    """A server certificate (PEM) and its private key (PEM, unencrypted)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsCerts:
    """Everything :func:`make_certs` wrote.

    ``ca`` signed ``good``, ``expired`` and ``wrong_name``; ``other_ca`` signed ``foreign``.
    The server certificates name ``127.0.0.1`` and ``localhost``, except ``wrong_name``, which
    names only ``elsewhere.invalid``.
    """

    ca: Path
    other_ca: Path
    good: ServerCert
    expired: ServerCert
    foreign: ServerCert
    wrong_name: ServerCert


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lfsreg tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(directory: Path, cn: str, now: datetime.datetime) -> tuple[Path, x509.Certificate, EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{cn.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def _server(
    directory: Path,
    stem: str,
    ca: x509.Certificate,
    ca_key: EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    names: list[x509.GeneralName] | None = None,
    cn: str = HOST,
) -> ServerCert:
    key = ec.generate_private_key(ec.SECP256R1())
    names = names or [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = ServerCert(directory / f"{stem}.crt", directory / f"{stem}.key")
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    out.key.chmod(0o600)
    return out


def make_certs(directory: Path) -> TlsCerts:
    """Generate the test CAs and server certificates into ``directory`` (see :class:`TlsCerts`)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_path, ca, ca_key = _ca(directory, "lfsreg test CA", now)
    other_path, other, other_key = _ca(directory, "lfsreg other CA", now)
    return TlsCerts(
        ca=ca_path,
        other_ca=other_path,
        good=_server(directory, "good", ca, ca_key, now - day, now + 7 * day),
        expired=_server(directory, "expired", ca, ca_key, now - 10 * day, now - day),
        foreign=_server(directory, "foreign", other, other_key, now - day, now + 7 * day),
        wrong_name=_server(
            directory, "wrong-name", ca, ca_key, now - day, now + 7 * day, [x509.DNSName("elsewhere.invalid")], "elsewhere.invalid"
        ),
    )


@dataclass(frozen=True)
class TlsFront:
    """nginx serving ``https://127.0.0.1:PORT`` with ``cert``, proxying to ``upstream``."""

    url: str  # https://127.0.0.1:PORT
    port: int
    upstream: str
    cert: ServerCert
    access_log: Path
    error_log: Path

    def https(self, plain_url: str) -> str:
        """``plain_url`` (an ``http://`` URL on the upstream) as seen through this front."""
        if not plain_url.startswith(self.upstream):
            raise ValueError(f"{plain_url} is not on {self.upstream}")
        return self.url + plain_url[len(self.upstream) :]


# object downloads asked of 127.0.0.1 move to localhost (as storage moves to a CDN's host)
_MAP = """\
  map "$request_method $host" $to_localhost {
    "GET 127.0.0.1" 1;
    default 0;
  }
"""

_LOCATIONS = """\
    # a moved repository: git and LFS requests follow (same host: credentials go along)
    location ~ ^/moved(/.*)$ {{
      return 307 https://$http_host$1$is_args$args;
    }}
    location ~ ^/.+\\.git/info/lfs/objects/storage/ {{
      if ($to_localhost) {{
        return 307 {downloads_to}$request_uri;
      }}
{proxy}    }}
    location / {{
{proxy}    }}
"""


def _answers(url: str) -> bool:
    """Whether the front answers at all over TLS (no verification: the certificate may be bad on purpose)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status in (200, 401)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (OSError, ssl.SSLError):
        return False


@contextlib.contextmanager
def start_tls_front(workdir: Path, upstream: str, cert: ServerCert, *, downloads_to: str | None = None) -> Iterator[TlsFront]:
    """nginx on a free port of 127.0.0.1 serving HTTPS with ``cert``, proxying to ``upstream`` (``http://HOST:PORT``).

    LFS object downloads asked of ``127.0.0.1`` are redirected to ``downloads_to``
    (``https://HOST:PORT``; default: this front as ``localhost``).
    """
    proxy = proxy_block(upstream, proto="https")  # hrefs the upstream builds use the scheme the client used

    def config(port: int) -> str:
        locations = _LOCATIONS.format(proxy=proxy, downloads_to=downloads_to or f"https://localhost:{port}")
        return nginx_config(workdir, port, locations, http=_MAP, cert=cert.cert, key=cert.key)

    start = nginx_starter(workdir, config)

    def healthy(port: int) -> bool:
        return _answers(f"https://{HOST}:{port}/_health/probe.git/info/refs?service=git-upload-pack")

    port, procs = started(start, healthy, "nginx (TLS front)")
    try:
        yield TlsFront(
            url=f"https://{HOST}:{port}",
            port=port,
            upstream=upstream.rstrip("/"),
            cert=cert,
            access_log=workdir / "access.log",
            error_log=workdir / "error.log",
        )
    finally:
        for p in procs:
            p.stop()
