"""``lfsreg serve`` over a registry whose LFS objects are in S3 (giftless's S3 storage in SeaweedFS).

* ``--redirect``: a layer ``GET`` is a ``307`` to giftless's presigned SeaweedFS URL; skopeo
  and podman follow it, logged in to serve with Basic credentials that they must not (and do
  not) carry to the storage. The bytes come from SeaweedFS (its front's access log: each layer
  fetched, its size sent, no ``Authorization`` header), not through serve (its access log: the
  307s carry no body; its cache stays without layer objects).
* Two ``serve`` processes on one registry, separate caches, nothing shared but the git host and
  its LFS storage: an image pushed by skopeo through one is served by the other within
  ``--refresh``; blobs uploaded through one and the manifest put through the other become one
  image (staged blobs are found in the shared LFS storage); an upload session started on one is
  unknown to the other (``BLOB_UPLOAD_UNKNOWN``, nothing written), and goes on where it began.
* The two behind one address, nginx configured as README's deployment example: round robin
  serves skopeo's pull from both but splits an upload session (``BLOB_UPLOAD_UNKNOWN``); by
  source address, skopeo pushes through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
from gitenv import cli_env, require_tool
from peers.engine import podman_storage
from peers.nginx import log_lines, nginx_config, nginx_starter
from peers.procs import started
from serveput_images import OCI_MANIFEST, Image, image, sha

import lfsreg
from tests.conftest import FIXTURES
from tests.servehelp import busybox_layer, busybox_oci, free_env, serving

pytestmark = pytest.mark.interop

USER, PASSWORD = "puller", "s3-serve-pw"
AUTH = "Basic " + __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def s3_registry(git_http_s3_server, tmp_path_factory):
    """A registry on the S3-backed git host holding app.oci (acme/app:1.0) and busybox (test/busybox:1)."""
    tmp = tmp_path_factory.mktemp("s3-serve")
    repo = git_http_s3_server.create_repo("s3/serve")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in cli_env(tmp, git_http_s3_server).items():
            mp.setenv(k, v)
        with lfsreg.Registry(repo.url) as reg:
            reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
            reg.push([f"oci:{busybox_oci(tmp / 'busybox.oci')}:1"], tags=["test/busybox:1"])
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(f"{USER}:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode() + "\n")
    return repo, htpasswd


@pytest.fixture
def s3_env(git_http_s3_server, tmp_path, monkeypatch):
    """This process's environment for the S3 git host, with a fresh (empty) cache."""
    for k, v in cli_env(tmp_path, git_http_s3_server).items():
        monkeypatch.setenv(k, v)


class AccessLog(logging.Handler):
    """serve's access log lines (``lfsreg.serve.access``) while the test runs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def access_log():
    handler, logger = AccessLog(), logging.getLogger("lfsreg.serve.access")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def layers_of(server_url: str, name: str, tag: str) -> list[dict]:
    conn = http.client.HTTPConnection(server_url.removeprefix("http://"), timeout=30)
    conn.request("GET", f"/v2/{name}/manifests/{tag}", headers={"Authorization": AUTH, "Accept": OCI_MANIFEST})
    return json.loads(conn.getresponse().read())["layers"]


def check_redirected(lines: list[str], layers: list[dict], seaweed, mark: int, cache: Path) -> None:
    """Every layer GET was a 307 without a body, the client fetched each layer from SeaweedFS (its
    front's log: 200, the layer's size, no ``Authorization``), and no layer is in serve's cache."""
    for layer in layers:
        gets = [line for line in lines if '"GET /v2/' in line and f'/blobs/{layer["digest"]}"' in line]
        assert gets and all(line.split('" ')[1].split()[:2] == ["307", "0"] for line in gets), gets
    fetched = [line.split() for line in seaweed.access_log()[mark:] if line.startswith("GET ")]
    for layer in layers:
        mine = [f for f in fetched if f[1].endswith("/" + layer["digest"].split(":")[1])]
        assert mine and all(f[2:] == ["200", str(layer["size"]), "auth=no"] for f in mine), (layer, fetched)
    cached = {p.name for p in cache.rglob("*") if p.is_file()}
    assert not cached & {layer["digest"].split(":")[1] for layer in layers}


def test_skopeo_follows_the_307_to_seaweedfs_without_serves_credentials(
    s3_registry, s3_env, seaweedfs_server, git_http_s3_server, tmp_path
):
    repo, htpasswd = s3_registry
    with access_log() as lines, serving(repo.url, redirect=True, htpasswd=str(htpasswd)) as srv:
        layers = layers_of(srv.url, "acme/app", "1.0")
        conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=30)
        conn.request("GET", f"/v2/acme/app/blobs/{layers[0]['digest']}", headers={"Authorization": AUTH})
        resp = conn.getresponse()
        resp.read()
        location = resp.getheader("Location") or ""
        assert resp.status == 307 and location.startswith(f"{seaweedfs_server.url}/{seaweedfs_server.bucket}/"), (resp.status, location)
        assert "@" not in location.split("?")[0] and "Signature=" in location  # presigned, no userinfo
        for secret in (PASSWORD, git_http_s3_server.password, seaweedfs_server.secret_key):
            assert secret not in location
        mark = len(seaweedfs_server.access_log())
        conn.request("HEAD", f"/v2/acme/app/blobs/{layers[1]['digest']}", headers={"Authorization": AUTH})
        resp = conn.getresponse()
        resp.read()
        assert (resp.status, resp.getheader("Content-Length")) == (200, str(layers[1]["size"]))
        assert seaweedfs_server.access_log()[mark:] == []  # HEAD is answered from the registry, not the storage
        lines.clear()
        out = tmp_path / "out"
        proc = subprocess.run(
            [require_tool("skopeo"), "copy", "--src-tls-verify=false", "--src-creds", f"{USER}:{PASSWORD}",
             f"docker://{srv.url.removeprefix('http://')}/acme/app:1.0", f"oci:{out}:x"],
            env=free_env(tmp_path), capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    check_redirected(lines, layers, seaweedfs_server, mark, tmp_path / "cache")
    for blob in (out / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (FIXTURES / "app.oci" / "blobs" / "sha256" / blob.name).read_bytes()


def test_podman_pulls_busybox_through_the_307_from_seaweedfs(s3_registry, s3_env, seaweedfs_server, tmp_path):
    repo, htpasswd = s3_registry
    podman = require_tool("podman")
    storage = podman_storage(tmp_path / "root", f"/tmp/lfsreg-s3-{tmp_path.name[-12:]}")
    env = free_env(tmp_path)
    with access_log() as lines, serving(repo.url, redirect=True, htpasswd=str(htpasswd)) as srv:
        image_ref = f"{srv.url.removeprefix('http://')}/test/busybox:1"
        layers = layers_of(srv.url, "test/busybox", "1")
        mark = len(seaweedfs_server.access_log())
        lines.clear()
        try:
            pull = [podman, *storage, "pull", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", image_ref]
            proc = subprocess.run(pull, env=env, capture_output=True, text=True, timeout=180, check=False)
            assert proc.returncode == 0, proc.stderr
            inspect = [podman, *storage, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image_ref]
            diff_ids = json.loads(subprocess.run(inspect, env=env, capture_output=True, text=True, timeout=60, check=True).stdout)
        finally:
            subprocess.run([podman, *storage, "rmi", "-af"], env=env, capture_output=True, timeout=120, check=False)
            subprocess.run([podman, *storage, "system", "reset", "-f"], env=env, capture_output=True, timeout=120, check=False)
    check_redirected(lines, layers, seaweedfs_server, mark, tmp_path / "cache")
    assert diff_ids == ["sha256:" + hashlib.sha256(busybox_layer()[0]).hexdigest()]  # podman unpacked the real layer


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"{argv[:2]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@contextlib.contextmanager
def serve_process(url: str, env: dict[str, str], *args: str):
    """``lfsreg serve URL`` as a process of its own; yields its base URL."""
    argv = [sys.executable, "-m", "lfsreg", "serve", url, "--listen", "127.0.0.1:0", "--format", "json", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.communicate(timeout=30)[1]
        yield json.loads(line)["url"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err


class Client:
    def __init__(self, url: str) -> None:
        self.netloc = url.removeprefix("http://")

    def __call__(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.netloc, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Authorization": AUTH, **{k.replace("_", "-"): v for k, v in headers.items()}})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


@pytest.fixture(scope="module")
def serves(s3_registry, git_http_s3_server, tmp_path_factory):
    """Two ``lfsreg serve`` processes on the S3 registry (``--redirect``, ``--refresh 0.5``), caches of their own: their URLs."""
    repo, htpasswd = s3_registry
    tmp = tmp_path_factory.mktemp("serves")
    opts = ("--htpasswd", str(htpasswd), "--refresh", "0.5", "--redirect")
    env_a, env_b = cli_env(tmp / "a", git_http_s3_server), cli_env(tmp / "b", git_http_s3_server)
    with serve_process(repo.url, env_a, *opts) as url_a, serve_process(repo.url, env_b, *opts) as url_b:
        yield url_a, url_b


def test_two_serve_processes_on_the_s3_registry(s3_registry, serves, giftless_s3_server, seaweedfs_server, tmp_path):
    repo, _ = s3_registry
    skopeo = require_tool("skopeo")
    a, b = (Client(url) for url in serves)
    # 1. skopeo pushes through A; B serves the tag within --refresh, and skopeo pulls it through B
    layout = busybox_oci(tmp_path / "bb.oci")
    copy = [skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:1"]
    run([*copy, f"docker://{a.netloc}/pushed/bb:1"], free_env(tmp_path))
    pushed = time.monotonic()
    while json.loads(b("GET", "/v2/pushed/bb/tags/list")[2]).get("tags") != ["1"]:
        assert time.monotonic() - pushed < 0.5 + 5, "B did not serve A's push within --refresh"
        time.sleep(0.05)
    mark = len(seaweedfs_server.access_log())
    out = tmp_path / "out"
    pull = [skopeo, "copy", "--src-tls-verify=false", "--src-creds", f"{USER}:{PASSWORD}", f"docker://{b.netloc}/pushed/bb:1"]
    run([*pull, f"oci:{out}:x"], free_env(tmp_path))
    for blob in (out / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (layout / "blobs" / "sha256" / blob.name).read_bytes()
    layer = json.loads(b("GET", "/v2/pushed/bb/manifests/1", Accept=OCI_MANIFEST)[2])["layers"][0]
    got = [line.split()[1:] for line in seaweedfs_server.access_log()[mark:] if line.startswith("GET ")]
    assert [f"/{seaweedfs_server.bucket}/giftless/{repo.name}/{layer['digest'][7:]}", "200", str(layer["size"]), "auth=no"] in got
    assert giftless_s3_server.s3_key(repo.name, layer["digest"][7:]) in seaweedfs_server.objects(f"giftless/{repo.name}/")

    # 2. blobs uploaded through A, the manifest put through B: one image (staged blobs are in the shared LFS storage)
    im = image("two servers")
    for data in im.blobs.values():
        status, _, body = a("POST", f"/v2/split/app/blobs/uploads/?digest={sha(data)}", data)
        assert status == 201, body
    status, _, body = b("PUT", "/v2/split/app/manifests/v1", im.manifest, Content_Type=OCI_MANIFEST)
    assert status == 201, body
    deadline = time.monotonic() + 5.5
    while a("GET", "/v2/split/app/manifests/v1", Accept=OCI_MANIFEST)[0] != 200:
        assert time.monotonic() < deadline, "A did not serve B's manifest within --refresh"
        time.sleep(0.05)

    # 3. an upload session is the process's own: the other answers BLOB_UPLOAD_UNKNOWN and writes nothing
    data = hashlib.sha256(b"chunk").digest() * 300
    status, h, _ = a("POST", "/v2/chunked/app/blobs/uploads/", b"", Content_Length="0")
    assert status == 202
    where = h["location"]
    status, h, _ = a("PATCH", where, data[:4000], Content_Range="0-3999", Content_Type="application/octet-stream")
    assert (status, h["range"]) == (202, "0-3999")
    for method, path, body, extra in (
        ("PATCH", where, data[4000:], {"Content_Range": f"4000-{len(data) - 1}", "Content_Type": "application/octet-stream"}),
        ("GET", where, None, {}),
        ("PUT", f"{where}?digest={sha(data)}", data[4000:], {"Content_Type": "application/octet-stream"}),
    ):
        status, _, body = b(method, path, body, **extra)
        assert (status, code(body)) == (404, "BLOB_UPLOAD_UNKNOWN"), (method, status, body)
    assert b("HEAD", f"/v2/chunked/app/blobs/{sha(data)}")[0] == 404
    assert a("GET", where)[1]["range"] == "0-3999"  # A's session is untouched by what B refused
    status, _, body = a("PUT", f"{where}?digest={sha(data)}", data[4000:], Content_Range=f"4000-{len(data) - 1}")
    assert status == 201, body


_UPSTREAM = """\
  log_format lb '$request_method $uri $status $upstream_addr';
  upstream lfsreg_serve {{
{affinity}{servers}  }}
"""

# README's "TLS in front" example, without the TLS
_BALANCED = """\
    location /v2/ {{
      access_log {log} lb;
      proxy_pass http://lfsreg_serve;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 900s;
    }}
"""


def oci_layout(out: Path, im: Image) -> Path:
    """An OCI layout holding ``im`` as tag ``1``."""
    for data in (*im.blobs.values(), im.manifest):
        blob = out / "blobs" / "sha256" / sha(data)[7:]
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = {**im.descriptor(), "annotations": {"org.opencontainers.image.ref.name": "1"}}
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return out


@contextlib.contextmanager
def balancer(workdir: Path, backends: tuple[str, ...], *, affinity: bool):
    """nginx in front of ``backends``: by source address (``affinity``) or round robin; ``(netloc, its log)``."""
    workdir.mkdir(parents=True)
    log = workdir / "lb.log"
    servers = "".join(f"    server {url.removeprefix('http://')};\n" for url in backends)
    upstream = _UPSTREAM.format(affinity="    hash $remote_addr consistent;\n" if affinity else "", servers=servers)
    start = nginx_starter(workdir, lambda port: nginx_config(workdir, port, _BALANCED.format(log=log), http=upstream))
    port, procs = started(start, lambda port: Client(f"http://127.0.0.1:{port}")("GET", "/v2/")[0] == 200, "nginx (serve balancer)")
    try:
        yield f"127.0.0.1:{port}", log
    finally:
        for p in procs:
            p.stop()


def test_serve_processes_behind_one_address(serves, tmp_path):
    skopeo = require_tool("skopeo")
    layout = oci_layout(tmp_path / "lb.oci", image("behind one address"))  # blobs the registry lacks yet
    creds = f"{USER}:{PASSWORD}"
    with (
        balancer(tmp_path / "rr", serves, affinity=False) as (rr, rr_log),
        balancer(tmp_path / "ip", serves, affinity=True) as (ip, ip_log),
    ):
        # pulls need no affinity: skopeo pulls through round robin, both processes answering
        run(
            [skopeo, "copy", "--src-tls-verify=false", "--src-creds", creds, f"docker://{rr}/acme/app:1.0", f"oci:{tmp_path / 'out'}:x"],
            free_env(tmp_path),
        )
        assert {line.split()[3] for line in rr_log.read_text().splitlines()} == {u.removeprefix("http://") for u in serves}

        # an upload session's requests spread over both processes: BLOB_UPLOAD_UNKNOWN on the other one, nothing written
        c = Client(f"http://{rr}")
        status, h, _ = c("POST", "/v2/lb/rr/blobs/uploads/", b"", Content_Length="0")
        assert status == 202
        status, _, body = c("PATCH", h["location"], b"abc", Content_Range="0-2", Content_Type="application/octet-stream")
        assert (status, code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")
        # the PATCH's line may be written just after its answer was read (nginx logs on finalising)
        logged = log_lines(rr_log, until=lambda lines: sum("/blobs/uploads/" in line for line in lines) >= 2)
        uploads = [line.split() for line in logged if "/blobs/uploads/" in line]
        assert [u[0] for u in uploads] == ["POST", "PATCH"] and uploads[0][3] != uploads[1][3]

        # by source address: one process takes a client's uploads, and skopeo pushes through the balancer
        run(
            [skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:1", f"docker://{ip}/lb/ip:1"],
            free_env(tmp_path),
        )
        logged = log_lines(ip_log, until=lambda lines: any("/v2/lb/ip/manifests/1" in line for line in lines))
        lines = [line.split() for line in logged]
        assert len({line[3] for line in lines if "/blobs/uploads/" in line[1]}) == 1
        assert ["PUT", "/v2/lb/ip/manifests/1", "201"] in [line[:3] for line in lines]
