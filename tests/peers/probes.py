"""HTTP probes the peer servers are health-checked with (stdlib only); tests use them too.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

EMPTY_OID = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection (stdlib): ``(status, body)``."""
    u = urllib.parse.urlsplit(url)
    hdrs = dict(headers or {})
    if auth is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=timeout)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def lfs_batch_body(operation: str, objects: list[tuple[str, int]]) -> bytes:
    return json.dumps({"operation": operation, "transfers": ["basic"], "objects": [{"oid": o, "size": s} for o, s in objects]}).encode()


LFS_HEADERS = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}


def batch_answers(batch_url: str, operation: str, *, auth: tuple[str, str] | None = None) -> bool:
    """Whether an LFS batch endpoint answers 200 to a request for the empty object (a health check)."""
    status, _ = http_request("POST", batch_url, body=lfs_batch_body(operation, [(EMPTY_OID, 0)]), headers=LFS_HEADERS, auth=auth, timeout=2)
    return status == 200
