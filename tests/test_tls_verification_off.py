"""``verify_tls=False`` (the library's option for self-signed test servers) and the default trust store.

The machine's environment may carry ``REQUESTS_CA_BUNDLE`` and the like (CI images do): these
tests drop them, so lfsreg's own defaults are what is tested. The servers are the TLS front
(nginx with a throwaway CA, tests/peers/tls.py) before git http-backend + giftless, and the
fault LFS server with a certificate of that CA. The default trust store refuses both; with
verification off, a push through the front lands in git and giftless, and a download works.
"""

from __future__ import annotations

import hashlib
import ssl

import pytest
from fault_lfs import FaultLfsServer
from lfsclient import lfs_store

import lfsreg
from lfsreg.errors import UnreachableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.retry import RetryPolicy
from lfsreg.registry.location import RemoteOptions

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]
DATA = b"over tls\n" * 500
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
APP = "oci:{}:1.0"


@pytest.fixture(autouse=True)
def no_ca_variables(monkeypatch, tmp_path):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "LFSREG_CA_BUNDLE", "LFSREG_LFS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def lfs_server(tls_certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.good.cert, tls_certs.good.key)
    with FaultLfsServer(ssl_context=ctx) as srv:
        srv.add_object(DATA)
        yield srv


NO_RETRY = RetryPolicy(max_retries=0, sleep=lambda s: None)


def test_the_lfs_client_refuses_a_private_ca_by_default(lfs_server, tmp_path):
    assert lfs_server.endpoint().startswith("https://")
    with pytest.raises(UnreachableError, match=r"certificate of 127\.0\.0\.1:[0-9]+ not accepted"):
        lfs_store(lfs_server, tmp_path, policy=NO_RETRY).fetch([OBJ])
    assert lfs_server.batch_calls == 0  # refused in the handshake: no request reached the server


def test_the_lfs_client_with_verification_off_accepts_it(lfs_server, tmp_path):
    store = lfs_store(lfs_server, tmp_path, policy=NO_RETRY, verify_tls=False)
    store.fetch([OBJ])
    with store.open(OBJ) as f:
        assert f.read() == DATA
    assert lfs_server.batch_calls == 1 and lfs_server.attempts(OBJ.oid, "download") == 1


def test_a_push_with_verification_off_lands_and_by_default_is_refused(git_http_server, git_http_repo, tls_front, monkeypatch):
    from conftest import FIXTURES

    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    url = tls_front.https(git_http_repo.url)
    source = APP.format(FIXTURES / "app.oci")
    with pytest.raises(UnreachableError):
        lfsreg.Registry(url).push([source], tags=["acme/app:1"])
    assert not (git_http_repo.path / "refs" / "heads" / "main").exists()
    with lfsreg.Registry(url, options=RemoteOptions(verify_tls=False)) as reg:
        reg.push([source], tags=["acme/app:1"])
        assert [i.name for i in reg.images()] == ["acme/app"]
    assert (git_http_repo.path / "refs" / "heads" / "main").exists()
    assert len([p for p in git_http_repo.lfs_storage.iterdir() if p.is_file()]) == 3  # the layers reached giftless
