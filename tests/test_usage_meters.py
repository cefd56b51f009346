"""``lfsreg usage``: the hosts' own meters (lfsreg/hosts/meters.py, lfsreg/ops/hostusage.py).

No GitHub, GitLab or Forgejo runs here. The server below is a stand-in written for this test:
it answers with the response shapes the hosts document (GitLab ``GET /api/v4/projects/:id``
with ``statistics``; Forgejo ``GET /api/v1/user/quota``; GitHub ``GET
/users/{user}/settings/billing/usage`` with ``usageItems``), checks the headers each API
expects (``PRIVATE-TOKEN``, ``Authorization: token``, ``Authorization: Bearer``), and refuses
a request without the right token the way the hosts do, so a missing permission is tested too.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest
from conftest import assert_ok, run_cli

import lfsreg
from lfsreg.errors import UsageError
from lfsreg.ops.hostusage import guess_kind

TOKEN = "glpat-test-token"
GITLAB_PROJECT = {
    "id": 42,
    "path_with_namespace": "acme/images",
    "statistics": {
        "commit_count": 12,
        "storage_size": 3_500_000,
        "repository_size": 1_200_000,
        "wiki_size": 0,
        "lfs_objects_size": 2_300_000,
        "job_artifacts_size": 0,
        "packages_size": 0,
        "snippets_size": 0,
        "uploads_size": 0,
    },
}
FORGEJO_QUOTA = {
    "groups": [{"name": "default", "rules": [{"name": "all", "limit": 1_073_741_824, "subjects": ["size:all"]}]}],
    "used": {"size": {"assets": {"artifacts": 0, "attachments": {"issues": 0, "releases": 0}, "packages": {"all": 0}},
                      "git": {"LFS": 5_000_000}, "repos": {"private": 70_000, "public": 30_000}}},
}  # fmt: skip
GITHUB_USAGE = {
    "usageItems": [
        {"date": "2026-11-01T00:00:00Z", "product": "git_lfs", "sku": "git_lfs_storage", "quantity": 120.5, "unitType": "GigabyteHours",
         "pricePerUnit": 0.0, "grossAmount": 0.0, "discountAmount": 0.0, "netAmount": 0.0, "repositoryName": "acme/images"},
        {"date": "2026-11-02T00:00:00Z", "product": "git_lfs", "sku": "git_lfs_storage", "quantity": 4.5, "unitType": "GigabyteHours",
         "pricePerUnit": 0.0, "grossAmount": 0.0, "discountAmount": 0.0, "netAmount": 0.0, "repositoryName": "acme/images"},
        {"date": "2026-11-02T00:00:00Z", "product": "git_lfs", "sku": "git_lfs_bandwidth", "quantity": 2.25, "unitType": "GigaBytes",
         "pricePerUnit": 0.0, "grossAmount": 0.0, "discountAmount": 0.0, "netAmount": 0.0, "repositoryName": "acme/images"},
        {"date": "2026-11-02T00:00:00Z", "product": "actions", "sku": "actions_linux", "quantity": 300, "unitType": "Minutes",
         "pricePerUnit": 0.008, "grossAmount": 2.4, "discountAmount": 2.4, "netAmount": 0.0, "repositoryName": "acme/images"},
    ]
}  # fmt: skip


class _Hosts(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]]

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if path.startswith("/api/v4/projects/"):
            if unquote(path.removeprefix("/api/v4/projects/")) != "acme/images":
                return self._send(404, {"message": "404 Project Not Found"})
            if self.headers.get("PRIVATE-TOKEN") != TOKEN:
                # GitLab answers an anonymous or Guest read of a public project without statistics
                return self._send(200, {k: v for k, v in GITLAB_PROJECT.items() if k != "statistics"})
            return self._send(200, GITLAB_PROJECT)
        if path == "/api/v1/user/quota":
            if self.headers.get("Authorization") != f"token {TOKEN}":
                return self._send(401, {"message": "token is required", "url": "https://forgejo.example/api/swagger"})
            return self._send(200, FORGEJO_QUOTA)
        if path in ("/users/acme/settings/billing/usage", "/organizations/acme/settings/billing/usage"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(403, {"message": "Resource not accessible by personal access token", "status": "403"})
            if path.startswith("/users/"):
                return self._send(404, {"message": "Not Found", "status": "404"})  # acme is an organisation
            return self._send(200, GITHUB_USAGE)
        return self._send(404, {"message": "Not Found"})


@pytest.fixture
def hosts():
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Hosts,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _registry(url: str, token: str | None, monkeypatch) -> lfsreg.Registry:
    for name in ("LFSREG_TOKEN", "LFSREG_USERNAME", "LFSREG_PASSWORD", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    if token:
        monkeypatch.setenv("LFSREG_TOKEN", token)
    return lfsreg.Registry(url)


def test_gitlab_project_statistics(hosts, monkeypatch):
    base, seen = hosts
    found = _registry(f"{base}/acme/images.git", TOKEN, monkeypatch).usage(kind="gitlab")
    assert found.api_url == f"{base}/api/v4"
    meters = {m.name: m.value for m in found.meters}
    assert meters["LFS objects"] == 2_300_000 and meters["git repository"] == 1_200_000
    assert found.missing == []
    assert seen[-1][0] == "/api/v4/projects/acme%2Fimages?statistics=true" and seen[-1][1]["private-token"] == TOKEN


def test_gitlab_without_read_api_names_the_permission(hosts, monkeypatch):
    base, _ = hosts
    found = _registry(f"{base}/acme/images.git", None, monkeypatch).usage(kind="gitlab")
    assert found.meters == [] and len(found.missing) == 1
    assert "read_api" in found.missing[0] and "Reporter" in found.missing[0]


def test_forgejo_quota(hosts, monkeypatch):
    base, seen = hosts
    found = _registry(f"{base}/acme/images.git", TOKEN, monkeypatch).usage(kind="forgejo")
    meters = {m.name: m.value for m in found.meters}
    assert meters["LFS objects (all of the user's repositories)"] == 5_000_000
    assert meters["git repositories"] == 100_000
    assert meters["quota all (size:all)"] == 1_073_741_824
    assert seen[-1][1]["authorization"] == f"token {TOKEN}"
    refused = _registry(f"{base}/acme/images.git", "wrong", monkeypatch).usage(kind="forgejo")
    assert refused.meters == [] and "HTTP 401" in refused.missing[0] and "read:user" in refused.missing[0]


def test_github_billing_lfs_lines_of_an_organisation(hosts, monkeypatch):
    base, seen = hosts
    found = _registry(f"{base}/acme/images.git", TOKEN, monkeypatch).usage(kind="github", api_url=base)
    assert {(m.name, m.value, m.unit) for m in found.meters} == {
        ("git_lfs_bandwidth (billing period so far)", 2.25, "GigaBytes"),
        ("git_lfs_storage (billing period so far)", 125.0, "GigabyteHours"),
    }
    assert [p for p, _ in seen[-2:]] == ["/users/acme/settings/billing/usage", "/organizations/acme/settings/billing/usage"]
    assert seen[-1][1]["authorization"] == f"Bearer {TOKEN}" and seen[-1][1]["x-github-api-version"] == "2022-11-28"
    refused = _registry(f"{base}/acme/images.git", None, monkeypatch).usage(kind="github", api_url=base)
    assert "HTTP 403" in refused.missing[0] and "Plan: read" in refused.missing[0] and "user scope" in refused.missing[0]


def test_cli_text_and_json(hosts, monkeypatch):
    base, _ = hosts
    env = {"HOME": "/nonexistent", "LFSREG_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = run_cli("usage", f"{base}/acme/images.git", "--host", "gitlab", env=env)
    assert_ok(proc)
    assert proc.stdout.splitlines()[:3] == [f"gitlab ({base}/api/v4):", "  LFS objects: 2.3MB", "  git repository: 1.2MB"]
    assert TOKEN not in proc.stdout + proc.stderr
    proc = run_cli(
        "usage", f"{base}/acme/images.git", "--host", "github", "--api-url", base, "--format", "json", env={**env, "LFSREG_TOKEN": ""}
    )
    assert_ok(proc)
    data = json.loads(proc.stdout)
    assert data["kind"] == "github" and data["meters"] == [] and "Plan: read" in data["missing"][0]


def test_which_host_and_what_is_refused(tmp_path, hosts, monkeypatch):
    assert guess_kind("github.com") == "github" and guess_kind("gitlab.com") == "gitlab"
    assert guess_kind("codeberg.org") == "forgejo" and guess_kind("git.example.org") is None
    base, _ = hosts
    with pytest.raises(UsageError, match="which API"):
        _registry(f"{base}/acme/images.git", TOKEN, monkeypatch).usage()
    with pytest.raises(UsageError, match="lfsreg du"):
        lfsreg.Registry(str(tmp_path / "local.git")).usage()
    proc = run_cli("usage", tmp_path / "local.git")
    assert proc.returncode == 2 and "lfsreg du" in proc.stderr
