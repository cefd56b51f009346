"""Certificate checks of the LFS client's session (lfsreg/lfs/http.py), with no CA variable set.

The machine's environment may carry ``REQUESTS_CA_BUNDLE`` (CI images do): these tests drop it,
so the session's own defaults are what is tested. A TLS fault server with a throwaway CA
(tests/test_tls.py) is refused by the default trust store, and accepted only when verification
is switched off (``verify_tls=False``, the library's option for self-signed test servers).
"""

from __future__ import annotations

import hashlib
import ssl

import pytest
from fault_lfs import FaultLfsServer
from test_tls import _cert

from lfsreg.errors import UnreachableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy

DATA = b"over tls\n" * 500
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))


@pytest.fixture
def server(tmp_path, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    _, cert, key = _cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with FaultLfsServer(ssl_context=ctx) as srv:
        srv.add_object(DATA)
        yield srv


def _store(server, tmp_path, **settings) -> HttpLfsStore:
    policy = RetryPolicy(max_retries=0, sleep=lambda s: None)
    cache = ObjectCache(str(tmp_path / "cache"))
    return HttpLfsStore(server.endpoint(), [], cache, HttpSettings(policy=policy, timeout=10, **settings))


def test_the_default_trust_store_refuses_a_private_ca(server, tmp_path):
    assert server.endpoint().startswith("https://")
    with pytest.raises(UnreachableError, match="certificate is not trusted"):
        _store(server, tmp_path).fetch([OBJ])
    assert server.batch_calls == 0  # refused in the handshake: no request reached the server


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_switched_off_accepts_it(server, tmp_path):
    store = _store(server, tmp_path, verify_tls=False)
    store.fetch([OBJ])
    with store.open(OBJ) as f:
        assert f.read() == DATA
    assert server.batch_calls == 1 and server.attempts(OBJ.oid, "download") == 1
