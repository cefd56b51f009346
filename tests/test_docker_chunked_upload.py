"""``docker://`` blob uploads in chunks (``PATCH`` + ``Content-Range``, then ``PUT ?digest=``), issue 11.

Against docker-registry (distribution 2.8, the reference server) and ``lfsreg serve``:

* a blob over the client's chunk size goes in several ``PATCH`` requests of at most one chunk
  (docker-registry's access log), and the stored bytes are the blob's; one under it in one ``PUT``;
* bytes that do not match their digest never complete a blob (the reader is verified before the
  final ``PUT``);
* a connection cut in the middle of a chunk is resumed from the offset the registry reports
  (``lfsreg serve``), or the upload starts again in a new session where the registry cannot
  resume (docker-registry);
* a registry that refuses chunks (nginx in front of docker-registry answering every ``PATCH``
  with ``416``, as GHCR does over its request size cap) gets the blob in one ``PUT``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from cutproxy import Cut, CutProxy
from peers import DistributionServer
from peers.nginx import nginx_config, nginx_starter, proxy_block
from peers.probes import http_request
from peers.procs import started
from servehelp import serving

from lfsreg.api import Registry
from lfsreg.credentials import Credential
from lfsreg.digest import Digest
from lfsreg.distribution.client import RegistryClient
from lfsreg.distribution.session import RegistryAccess
from lfsreg.errors import CorruptContentError
from lfsreg.integrity import VerifiedReader
from lfsreg.lfs.http import HttpSettings
from lfsreg.lfs.retry import RetryPolicy

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop

CHUNK = 256 << 10
DATA = os.urandom(3 * CHUNK - 1000)  # three chunks, the last one short
DIGEST = Digest("sha256", hashlib.sha256(DATA).hexdigest())


def _opener(data: bytes = DATA):
    return lambda: VerifiedReader(io.BytesIO(data), DIGEST, len(DATA), "test blob")


def _client(host: str, **access: object) -> RegistryClient:
    return RegistryClient(host, RegistryAccess(**access), chunk_size=CHUNK)  # type: ignore[arg-type]


def _patches(registry: DistributionServer, name: str) -> list[str]:
    return [line for line in registry.access_log() if f'"PATCH /v2/{name}/blobs/uploads/' in line]


def test_large_blob_in_chunks_small_blob_in_one_put(distribution_registry: DistributionServer) -> None:
    client = _client(distribution_registry.host)
    try:
        client.upload("lfsreg/chunked", DIGEST, len(DATA), _opener())
        assert client.has_blob("lfsreg/chunked", DIGEST, len(DATA))
        small = b"small blob" * 10
        small_digest = Digest.of_bytes(small)
        client.upload("lfsreg/chunked", small_digest, len(small), lambda: VerifiedReader(io.BytesIO(small), small_digest, len(small), "s"))
    finally:
        client.close()
    assert len(_patches(distribution_registry, "lfsreg/chunked")) == 3
    assert distribution_registry.blob_path(str(DIGEST)).read_bytes() == DATA
    assert distribution_registry.blob_path(str(Digest.of_bytes(small))).read_bytes() == small


def test_chunks_into_serve_and_bad_bytes_complete_nothing(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "s.git"))
    reg.init()
    reg.close()
    (tmp_path / "tokens").write_text("tok-1\n")
    with serving(tmp_path / "s.git", token_file=str(tmp_path / "tokens")) as server:
        client = _client(server.url.removeprefix("http://"), credential=Credential("u", "tok-1", "test"))
        try:
            bad = DATA[:-1] + bytes([DATA[-1] ^ 1])
            with pytest.raises(CorruptContentError):
                client.upload("app/web", DIGEST, len(DATA), _opener(bad))
            assert not client.has_blob("app/web", DIGEST)
            client.upload("app/web", DIGEST, len(DATA), _opener())
            assert client.has_blob("app/web", DIGEST, len(DATA))
            blob = client.open_blob("app/web", DIGEST)
            assert blob.read() == DATA
            blob.close()
        finally:
            client.close()


def _cut_upload(target: tuple[str, int], name: str, **access: object) -> int:
    """Upload through a proxy that cuts the second chunk once; the bytes the proxy passed up."""
    rule = Cut("up", after=CHUNK + CHUNK // 2, request=rf"PATCH /v2/{name}/".encode())  # inside the second chunk
    with CutProxy(target, rule) as proxy:
        settings = HttpSettings(policy=RetryPolicy(max_retries=3, base_delay=0.05))
        client = _client(f"127.0.0.1:{proxy.port}", settings=settings, **access)
        try:
            client.upload(name, DIGEST, len(DATA), _opener())
            assert client.has_blob(name, DIGEST, len(DATA))
        finally:
            client.close()
        assert proxy.fired == 1
        return proxy.relayed["up"]


def test_a_cut_chunk_is_resumed_where_serve_says(tmp_path: Path) -> None:
    """``lfsreg serve`` keeps what arrived of a cut chunk: the rest of that chunk is sent, not the blob again."""
    Registry(str(tmp_path / "s.git")).init()
    (tmp_path / "tokens").write_text("tok-1\n")
    with serving(tmp_path / "s.git", token_file=str(tmp_path / "tokens")) as server:
        host, port = server.url.removeprefix("http://").split(":")
        sent = _cut_upload((host, int(port)), "app/resumed", credential=Credential("u", "tok-1", "test"))
        assert sent < len(DATA) + CHUNK  # the cut chunk's rest only
        blob = _client(server.url.removeprefix("http://"), credential=Credential("u", "tok-1", "test")).open_blob("app/resumed", DIGEST)
        assert blob.read() == DATA
        blob.close()


def test_a_cut_chunk_restarts_the_upload_on_docker_registry(distribution_registry: DistributionServer) -> None:
    """docker-registry 2.8 cannot resume a cut PATCH (404 BLOB_UPLOAD_INVALID on the session): a new session, the blob again."""
    host, port = distribution_registry.host.split(":")
    assert _cut_upload((host, int(port)), "lfsreg/restarted") > len(DATA)
    assert distribution_registry.blob_path(str(DIGEST)).read_bytes() == DATA


_REFUSE_PATCH = """\
    location / {{
      if ($request_method = PATCH) {{
        return 416 '{{"errors":[{{"code":"BLOB_UPLOAD_INVALID","message":"the request body is too large"}}]}}';
      }}
{proxy}    }}
"""


def test_a_registry_refusing_chunks_gets_the_blob_whole(distribution_registry: DistributionServer, tmp_path: Path) -> None:
    def config(port: int) -> str:
        return nginx_config(tmp_path, port, _REFUSE_PATCH.format(proxy=proxy_block(distribution_registry.url, proto="http")))

    def healthy(port: int) -> bool:
        try:
            return http_request("GET", f"http://127.0.0.1:{port}/v2/")[0] == 200
        except OSError:
            return False

    port, procs = started(nginx_starter(tmp_path, config), healthy, "nginx refusing PATCH")
    try:
        client = _client(f"127.0.0.1:{port}")
        try:
            client.upload("lfsreg/whole", DIGEST, len(DATA), _opener())
            assert client.has_blob("lfsreg/whole", DIGEST, len(DATA))
        finally:
            client.close()
    finally:
        for p in procs:
            p.stop()
    log = (tmp_path / "access.log").read_text()
    assert '"PATCH /v2/lfsreg/whole/blobs/uploads/' in log and " 416 " in log
    assert len([line for line in log.splitlines() if '"PUT /v2/lfsreg/whole/blobs/uploads/' in line and '" 201 ' in line]) == 1
    assert distribution_registry.blob_path(str(DIGEST)).read_bytes() == DATA
