"""Which credentials go to which host (issue 8, security defect 1).

Environment and netrc credentials go only to the git host the user named and to an LFS URL the
user gave (``--lfs-url``, ``LFSREG_LFS_URL``). A host named by the registry's own content (a
committed ``.lfsconfig``) gets only credentials stored for exactly that host, and never plain
http unless it is the host the user named. A storage host named by a batch response gets only
the action's own headers. Real servers on 127.0.0.1: the git host is nginx + git http-backend
(tests/peers.py); the other hosts are LFS servers on other ports (tests/fault_lfs.py) that
record the Authorization header of every request.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from fault_lfs import FaultLfsServer
from gitenv import cli_env, isolated_git_env, run_git

pytestmark = pytest.mark.interop
IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))
OTHER = "docker-archive:" + str(fixture("app.docker.tar"))


def _commit_lfsconfig(repo, lfs_url: str, tmp_path: Path) -> None:
    """Commit a ``.lfsconfig`` naming ``lfs_url`` into the registry, as anyone with write access could."""
    genv = isolated_git_env(tmp_path / "git", lfs=False)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", str(repo.path), str(clone)], cwd=tmp_path, env=genv)
    (clone / ".lfsconfig").write_text(f'[lfs]\n\turl = "{lfs_url}"\n')
    run_git(["add", ".lfsconfig"], cwd=clone, env=genv)
    run_git(["commit", "-qm", "lfs elsewhere"], cwd=clone, env=genv)
    run_git(["push", "-q", "origin", "HEAD:main"], cwd=clone, env=genv)


def _basic_sent(server: FaultLfsServer) -> list[str]:
    return [r.header("Authorization") or "" for r in server.requests if r.auth_scheme == "Basic"]


def test_lfsconfig_naming_plain_http_elsewhere_gets_nothing(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path, git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, env=env))
    with FaultLfsServer() as other:
        _commit_lfsconfig(git_http_repo, other.endpoint(), tmp_path)
        before = git_http_repo.main()
        proc = run_cli("push", git_http_repo.url, OTHER, env=env)
        assert_error(proc, 2, ".lfsconfig", other.endpoint())
        assert other.requests == []  # not a byte: neither credentials nor objects
        fresh = {**env, "LFSREG_CACHE": str(tmp_path / "fresh-cache")}  # the layers must be downloaded
        proc = run_cli("pull", git_http_repo.url, "acme/base:1.0", "-o", f"docker-archive:{tmp_path / 'x.tar'}", env=fresh)
        assert_error(proc, 2, ".lfsconfig")
        assert other.requests == []
    assert git_http_repo.main() == before
    assert git_http_server.password not in proc.stderr


def test_lfsconfig_naming_https_elsewhere_gets_only_its_own_stored_credentials(git_http_server, git_http_repo, tls_certs, tmp_path):
    ca = tls_certs.ca
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_certs.good.cert, tls_certs.good.key)
    env = cli_env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(ca))
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, env=env))
    with FaultLfsServer(ssl_context=context) as other:
        _commit_lfsconfig(git_http_repo, other.endpoint(), tmp_path)
        assert_ok(run_cli("push", git_http_repo.url, OTHER, env=env))
        assert other.requests, "the push used the .lfsconfig endpoint"
        assert _basic_sent(other) == []  # LFSREG_USERNAME/LFSREG_PASSWORD stayed home
        # a git-credentials line for exactly that host (scheme, host and port) is sent there
        other.reset_log()
        (Path(env["HOME"]) / ".git-credentials").write_text(f"https://lfs-user:lfs-secret@127.0.0.1:{other.port}\n")
        out = tmp_path / "out.tar"
        fresh = {**env, "LFSREG_CACHE": str(tmp_path / "c2")}
        assert_ok(run_cli("pull", git_http_repo.url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=fresh))
        assert set(_basic_sent(other)) == {FaultLfsServer.redacted_basic("lfs-user", "lfs-secret")}


def test_lfs_url_the_user_gives_gets_the_environment_credentials(git_http_server, git_http_repo, tmp_path):
    user, password = git_http_server.user, git_http_server.password
    with FaultLfsServer(credentials=(user, password)) as lfs:
        for how in ("flag", "env"):
            extra = {"LFSREG_LFS_URL": lfs.endpoint()} if how == "env" else {}
            args = ["--lfs-url", lfs.endpoint()] if how == "flag" else []
            env = cli_env(tmp_path / how, git_http_server, **extra)
            assert_ok(run_cli(*args, "push", git_http_repo.url, IMAGE if how == "flag" else OTHER, env=env))
        assert set(_basic_sent(lfs)) == {FaultLfsServer.redacted_basic(user, password)}


class _StorageElsewhere(FaultLfsServer):
    """An LFS server whose actions send the bytes to another host (as a CDN or S3 would)."""

    def __init__(self, storage: FaultLfsServer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.storage_host = storage

    def storage_url(self, oid: str) -> str:
        return self.storage_host.storage_url(oid)


def test_storage_host_named_by_a_batch_response_gets_only_the_actions_headers(git_http_server, git_http_repo, tmp_path):
    user, password = git_http_server.user, git_http_server.password
    shared = tmp_path / "objects"  # one object store behind both hosts, so the verify action finds the upload
    with (
        FaultLfsServer(action_auth=False, storage_dir=shared) as storage,
        _StorageElsewhere(storage, credentials=(user, password), storage_dir=shared) as lfs,
    ):
        env = cli_env(tmp_path, git_http_server, LFSREG_LFS_URL=lfs.endpoint())
        assert_ok(run_cli("push", git_http_repo.url, IMAGE, env=env))
        uploads = [r for r in storage.requests if r.method == "PUT"]
        assert uploads, "the layers went to the storage host"
        assert {r.auth_scheme for r in storage.requests} == {"RemoteAuth"}
        assert _basic_sent(lfs)  # the batch API itself did get the user's credentials
