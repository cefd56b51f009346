"""Where git users and Python users name their CAs, git smart HTTP and LFS both find them; a refused certificate is said at once.

Issue 9: only ``LFSREG_CA_BUNDLE`` and ``REQUESTS_CA_BUNDLE`` were read. ``SSL_CERT_FILE``
reached git (OpenSSL reads it) but not the LFS client (requests brings its own CAs), so a push
failed half way; ``GIT_SSL_CAINFO``, git's ``http.sslCAInfo`` and ``CURL_CA_BUNDLE`` reached
neither. And urllib3 inside dulwich tried a refused certificate four times before the one
line. Now one place (``lfsreg.registry.location.ca_bundle_from``) names the bundle for both
clients, and a refused certificate costs one handshake. Real nginx TLS fronts
(tests/peers/tls.py) before stock git http-backend + giftless.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from cutproxy import CutProxy
from imageverify import source_image, verify_oci_layout

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))
TLS_VARIABLES = ("LFSREG_CA_BUNDLE", "GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


def _env(tmp_path: Path, server, **extra: str) -> dict[str, str]:
    """A clean environment: the server's credentials, a fresh cache and HOME, no CA setting but ``extra``."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFSREG_", "XDG_", "GIT_")) and k not in TLS_VARIABLES}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        LFSREG_CACHE=str(tmp_path / "cache"),
        LFSREG_USERNAME=server.user,
        LFSREG_PASSWORD=server.password,
        **extra,
    )
    return env


def _objects(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def _push_and_pull(url: str, repo, tmp_path: Path, env: dict[str, str]) -> None:
    """Push the app image (git and LFS through the front) and pull it back with a fresh cache."""
    assert_ok(run_cli("push", url, APP, env=env))
    assert len(_objects(repo.lfs_storage)) == 3  # the layers went through the LFS client
    out = tmp_path / "out.oci"
    assert_ok(run_cli("pull", url, "acme/app:1.0", "-o", f"oci:{out}", env={**env, "LFSREG_CACHE": str(tmp_path / "cache-pull")}))
    (image,) = verify_oci_layout(out)
    assert image.diff_ids == source_image(APP).diff_ids


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"])
def test_ca_from_a_variable_reaches_git_and_lfs(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path, variable):
    env = _env(tmp_path, git_http_server, **{variable: str(tls_certs.ca)})
    _push_and_pull(tls_front.https(git_http_repo.url), git_http_repo, tmp_path, env)


def test_ca_from_git_config_reaches_git_and_lfs(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    env = _env(tmp_path, git_http_server)
    (Path(env["HOME"]) / "ca.pem").write_bytes(tls_certs.ca.read_bytes())
    (Path(env["HOME"]) / ".gitconfig").write_text("[http]\n\tsslCAInfo = ~/ca.pem\n")  # git expands ~ in paths
    _push_and_pull(tls_front.https(git_http_repo.url), git_http_repo, tmp_path, env)


def test_git_ssl_cainfo_wins_over_requests_and_openssl_variables(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    # what git would use comes first: the other variables name another CA here
    wrong = str(tls_certs.other_ca)
    env = _env(tmp_path, git_http_server, GIT_SSL_CAINFO=str(tls_certs.ca), REQUESTS_CA_BUNDLE=wrong, SSL_CERT_FILE=wrong)
    _push_and_pull(tls_front.https(git_http_repo.url), git_http_repo, tmp_path, env)


def test_lfsreg_ca_bundle_wins_over_git_ssl_cainfo(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca), GIT_SSL_CAINFO=str(tls_certs.other_ca))
    assert_ok(run_cli("push", tls_front.https(git_http_repo.url), APP, env=env))


def test_missing_git_ssl_cainfo_file_is_bad_usage(git_http_server, git_http_repo, tls_front, tmp_path):
    env = _env(tmp_path, git_http_server, GIT_SSL_CAINFO=str(tmp_path / "gone.pem"))
    assert_error(run_cli("push", tls_front.https(git_http_repo.url), APP, env=env), 2, "gone.pem")
    assert _objects(git_http_repo.lfs_storage) == []
    assert not (git_http_repo.path / "refs" / "heads" / "main").exists()


@pytest.mark.parametrize("command", ["tags", "push"])
def test_a_refused_certificate_costs_one_handshake(git_http_server, git_http_repo, tls_front, tmp_path, command):
    # a relay before the front counts the connections: urllib3 used to try the handshake 4 times
    with CutProxy(("127.0.0.1", tls_front.port)) as relay:
        url = tls_front.https(git_http_repo.url).replace(f":{tls_front.port}/", f":{relay.port}/")
        args = (url, APP) if command == "push" else (url,)
        proc = run_cli(command, *args, env=_env(tmp_path, git_http_server))
        line = assert_error(proc, 1, f"127.0.0.1:{relay.port}", "unable to get local issuer certificate")
        assert "TLS certificate" in line
        assert relay.connections == 1, f"{relay.connections} handshakes with a refused certificate"
