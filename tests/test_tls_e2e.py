"""HTTPS end to end: nginx with a throwaway CA's certificates in front of stock git http-backend + giftless.

The fronts (tests/peers/tls.py) serve a good certificate, an expired one and one of another
CA; every request of lfsreg's two HTTP clients -- git smart HTTP (dulwich on urllib3) and the
LFS client (requests) -- and of stock git + git-lfs goes through them. LFS object downloads
asked of ``127.0.0.1`` are redirected to ``localhost``: a second host name the clients must
verify with the same CA. An SSH remote whose ``git-lfs-authenticate`` hands out an ``https``
LFS endpoint on the front checks that the CA reaches LFS behind SSH too.
"""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import warnings
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, describe, fixture, run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import source_image, verify_oci_layout
from peers import start_tls_front
from peers.nginx import log_lines

from lfsreg.errors import LfsregError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))
TLS_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
# A clean environment: the server's credentials, a fresh cache, no CA setting but the test's own.
_env = functools.partial(cli_env, drop=TLS_VARIABLES)


def _files(directory: Path | None) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory and directory.exists() else []


def _assert_untouched(repo) -> None:
    """Nothing was written to the (fresh, empty) remote: no ref, no git object, no LFS object."""
    assert _files(repo.path / "refs") == [], _files(repo.path / "refs")
    assert [p for p in _files(repo.path / "objects") if p.parent.name not in ("info", "pack")] == []
    assert _files(repo.path / "objects" / "pack") == []
    assert _files(repo.lfs_storage) == []


def _storage_gets(front, status: int) -> int:
    """How many LFS object downloads the front answered with ``status``."""
    pattern = re.compile(rf'"GET /\S+\.git/info/lfs/objects/storage/\S+ HTTP/1\.1" {status} ')
    return len(pattern.findall("\n".join(log_lines(front.access_log))))


def _failed_handshakes(front) -> int:
    return front.error_log.read_text().count("SSL_do_handshake() failed")


def _push_and_pull(front, repo, tmp_path: Path, env: dict[str, str], *args: str) -> None:
    """Push the app image through ``front`` and pull it back with a fresh cache; check what arrived."""
    url = front.https(repo.url)
    assert_ok(run_cli(*args, "push", url, APP, env=env))
    assert len(_files(repo.lfs_storage)) == 3  # the three layers went through the LFS client
    fresh = {**env, "LFSREG_CACHE": str(tmp_path / "cache-pull")}
    redirected, served = _storage_gets(front, 307), _storage_gets(front, 200)
    out = tmp_path / "out.oci"
    assert_ok(run_cli(*args, "pull", url, "acme/app:1.0", "-o", f"oci:{out}", env=fresh))
    (image,) = verify_oci_layout(out)
    src = source_image(APP)
    assert image.config_digest == src.config_digest and image.diff_ids == src.diff_ids
    # each layer was asked of 127.0.0.1, redirected, and fetched from localhost, verified again
    assert _storage_gets(front, 307) - redirected == 3
    assert _storage_gets(front, 200) - served == 3


# -- the CA reaches both clients, however it is given ---------------------------------------------


def test_push_and_pull_with_ca_bundle_option(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    env = _env(tmp_path, git_http_server)
    _push_and_pull(tls_front, git_http_repo, tmp_path, env, "--ca-bundle", str(tls_certs.ca))
    log = "\n".join(log_lines(tls_front.access_log))
    assert 'git-receive-pack HTTP/1.1" 200' in log and 'git-upload-pack HTTP/1.1" 200' in log


@pytest.mark.parametrize("variable", ["LFSREG_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])
def test_push_and_pull_with_ca_from_environment(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path, variable):
    # REQUESTS_CA_BUNDLE reached only the LFS client: git smart HTTP refused the certificate
    env = _env(tmp_path, git_http_server, **{variable: str(tls_certs.ca)})
    _push_and_pull(tls_front, git_http_repo, tmp_path, env)


def test_lfsreg_ca_bundle_wins_over_requests_ca_bundle(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca), REQUESTS_CA_BUNDLE=str(tls_certs.other_ca))
    assert_ok(run_cli("push", tls_front.https(git_http_repo.url), APP, env=env))


def test_missing_ca_bundle_file_is_bad_usage(git_http_server, git_http_repo, tls_front, tmp_path):
    env = _env(tmp_path, git_http_server, REQUESTS_CA_BUNDLE=str(tmp_path / "no-such.pem"))
    assert_error(run_cli("push", tls_front.https(git_http_repo.url), APP, env=env), 2, "no-such.pem")
    _assert_untouched(git_http_repo)
    env = _env(tmp_path, git_http_server)
    proc = run_cli("--ca-bundle", str(tmp_path / "no-such.pem"), "push", tls_front.https(git_http_repo.url), APP, env=env)
    assert proc.returncode == 2 and "no-such.pem" in proc.stderr and "Traceback" not in proc.stderr, describe(proc)
    _assert_untouched(git_http_repo)


def test_redirected_repository(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca))
    moved = tls_front.url + "/moved" + tls_front.https(git_http_repo.url)[len(tls_front.url) :]
    assert_ok(run_cli("push", moved, APP, env=env))
    assert len(_files(git_http_repo.lfs_storage)) == 3
    fresh = {**env, "LFSREG_CACHE": str(tmp_path / "cache-pull")}
    assert_ok(run_cli("pull", moved, "acme/app:1.0", "-o", f"oci:{tmp_path / 'out.oci'}", env=fresh))
    verify_oci_layout(tmp_path / "out.oci")
    log = "\n".join(log_lines(tls_front.access_log))
    assert re.search(r'"GET /moved/\S+/info/refs\?service=git-upload-pack HTTP/1\.1" 307 ', log)
    assert re.search(r'"POST /moved/\S+/info/lfs/objects/batch HTTP/1\.1" 307 ', log)


# -- stock git + git-lfs read what lfsreg pushed --------------------------------------------------


@pytest.mark.parametrize("how", ["GIT_SSL_CAINFO", "http.sslCAInfo"])
def test_stock_git_lfs_clones_over_https(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path, how):
    assert_ok(
        run_cli("push", tls_front.https(git_http_repo.url), APP, env=_env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca)))
    )
    env = isolated_git_env(tmp_path)
    store = Path(env["HOME"]) / "git-credentials"
    store.write_text(f"https://{git_http_server.user}:{git_http_server.password}@127.0.0.1:{tls_front.port}\n")
    store.chmod(0o600)
    run_git(["config", "--global", "credential.helper", f"store --file {store}"], cwd=tmp_path, env=env)
    url = tls_front.https(git_http_repo.url)

    # without the CA both refuse the certificate
    refused = run_git(["clone", "--quiet", url, "refused"], cwd=tmp_path, env=env, check=False)
    assert refused.returncode != 0 and b"certificate" in refused.stderr.lower(), refused.stderr

    if how == "GIT_SSL_CAINFO":
        env["GIT_SSL_CAINFO"] = str(tls_certs.ca)
    else:
        run_git(["config", "--global", "http.sslCAInfo", str(tls_certs.ca)], cwd=tmp_path, env=env)
    redirected = _storage_gets(tls_front, 307)
    work = tmp_path / "work"
    if how == "GIT_SSL_CAINFO":  # a smudging clone: git-lfs downloads during checkout
        run_git(["clone", "--quiet", url, "work"], cwd=tmp_path, env=env)
    else:
        run_git(["clone", "--quiet", url, "work"], cwd=tmp_path, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
        pointers = [p for p in (work / "layers").rglob("*") if p.is_file()]
        assert len(pointers) == 3 and all(p.read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1\n") for p in pointers)
        run_git(["lfs", "pull"], cwd=work, env=env)
    _assert_layers(work, 3)
    assert _storage_gets(tls_front, 307) - redirected == 3  # git-lfs followed to localhost and verified it

    # lfsreg pushes another image; stock git pulls it over https, smudging the new layers
    push_env = _env(tmp_path / "second", git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca))
    assert_ok(run_cli("push", url, "docker-archive:" + str(fixture("tool.docker.tar")), env=push_env))
    run_git(["pull", "--quiet", "--ff-only"], cwd=work, env=env)
    _assert_layers(work, len(_files(git_http_repo.lfs_storage)))
    assert (
        run_git(["rev-parse", "HEAD"], cwd=work, env=env).stdout.strip().decode()
        == (git_http_repo.path / "refs/heads/main").read_text().strip()
    )


def _assert_layers(work: Path, count: int) -> None:
    """The checkout holds ``count`` layers, each the real content (it hashes to its name)."""
    layers = [p for p in (work / "layers").rglob("*") if p.is_file()]
    assert len(layers) == count, layers
    for layer in layers:
        assert hashlib.sha256(layer.read_bytes()).hexdigest() == layer.name, layer


# -- refused certificates: one line naming the host and the problem, nothing written --------------

REFUSALS = {
    # front, CA given, what OpenSSL says
    "expired": ("tls_front_expired", "ca", "certificate has expired"),
    "other-ca": ("tls_front_foreign", "ca", "unable to get local issuer certificate"),
    "wrong-ca": ("tls_front", "other_ca", "unable to get local issuer certificate"),
    "no-ca": ("tls_front", None, "unable to get local issuer certificate"),
    "wrong-name": ("tls_front_wrong_name", "ca", "certificate is not valid for '127.0.0.1'"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_certificate_push(git_http_server, git_http_repo, tls_certs, tmp_path, request, case):
    front_fixture, ca, problem = REFUSALS[case]
    front = request.getfixturevalue(front_fixture)
    args = ("--ca-bundle", str(getattr(tls_certs, ca))) if ca else ()
    proc = run_cli(*args, "push", front.https(git_http_repo.url), APP, env=_env(tmp_path, git_http_server))
    line = assert_error(proc, 1, f"127.0.0.1:{front.port}", problem)
    assert "TLS certificate" in line
    _assert_untouched(git_http_repo)


@pytest.mark.parametrize("case", ["expired", "other-ca", "wrong-name"])
def test_refused_certificate_pull(git_http_server, git_http_repo, tls_front, tls_certs, tmp_path, request, case):
    good = _env(tmp_path / "push", git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca))
    assert_ok(run_cli("push", tls_front.https(git_http_repo.url), APP, env=good))
    front_fixture, _, problem = REFUSALS[case]
    front = request.getfixturevalue(front_fixture)
    out = tmp_path / "out.oci"
    proc = run_cli(
        "pull",
        front.https(git_http_repo.url),
        "acme/app:1.0",
        "-o",
        f"oci:{out}",
        env=_env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca)),
    )
    line = assert_error(proc, 1, f"127.0.0.1:{front.port}", problem)
    assert "TLS certificate" in line
    assert not out.exists()


def test_lfs_client_verifies_its_own_server(git_http_server, git_http_repo, tls_front, tls_front_foreign, tls_certs, tmp_path):
    # git through the good front, LFS through one with another CA's certificate
    lfs_url = tls_front_foreign.https(git_http_repo.lfs_url)
    env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca), LFSREG_LFS_URL=lfs_url)
    proc = run_cli("push", tls_front.https(git_http_repo.url), APP, env=env)
    line = assert_error(proc, 1, "LFS", f"127.0.0.1:{tls_front_foreign.port}", "unable to get local issuer certificate")
    assert f":{tls_front.port}" not in line
    _assert_untouched(git_http_repo)


def test_redirect_to_a_storage_host_is_verified_too(git_http_server, git_http_repo, tls_front, tls_front_expired, tls_certs, tmp_path):
    # batch API through a good front whose downloads move to a host with an expired certificate
    env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca))
    assert_ok(run_cli("push", tls_front.https(git_http_repo.url), APP, env=env))
    before = _failed_handshakes(tls_front_expired)
    with start_tls_front(tmp_path / "front", git_http_server.url, tls_certs.good, downloads_to=tls_front_expired.url) as front:
        fresh = {**env, "LFSREG_CACHE": str(tmp_path / "cache-pull")}
        out = tmp_path / "out.oci"
        proc = run_cli("pull", front.https(git_http_repo.url), "acme/app:1.0", "-o", f"oci:{out}", env=fresh)
        line = assert_error(proc, 1, f"127.0.0.1:{tls_front_expired.port}", "certificate has expired", "download of sha256:")
        assert f":{front.port}" not in line.split("TLS certificate", 1)[1]
        assert _storage_gets(front, 307) >= 1 and _storage_gets(front, 200) == 0
    assert not out.exists()
    # refused once per object, not retried (nginx logs a failed handshake when the client's alert arrives)
    assert _failed_handshakes(tls_front_expired) - before <= 3


def test_nothing_listening_on_an_https_port_is_one_line(git_http_server, tls_certs, tmp_path):
    # looking for a certificate problem in a refused connection must not add a warning to stderr
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = _env(tmp_path, git_http_server, LFSREG_CA_BUNDLE=str(tls_certs.ca))
        proc = run_cli("push", f"https://127.0.0.1:{port}/org/x.git", APP, env=env)
        assert_error(proc, 1, "cannot connect", f"127.0.0.1:{port}")


def test_refused_connection_to_an_https_lfs_server_warns_nothing(tls_certs, tmp_path):
    # the LFS side of the same (in-process: the CLI would retry a refused connection for a minute)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"https://127.0.0.1:{closed.getsockname()[1]}/org/x.git/info/lfs"
        settings = HttpSettings(ca_bundle=str(tls_certs.ca), timeout=5, policy=RetryPolicy(max_retries=0, sleep=lambda s: None))
        store = HttpLfsStore(endpoint, [], ObjectCache(str(tmp_path / "cache")), settings)
        data = b"x" * 100
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(LfsregError) as info:
                store.fetch([LfsObject(hashlib.sha256(data).hexdigest(), len(data))])
    assert endpoint in str(info.value) and "TLS" not in str(info.value)


# -- SSH remote, LFS over HTTPS ------------------------------------------------------------------


def test_ssh_remote_whose_lfs_server_speaks_https(sshd_server, git_http_server, git_http_repo, tls_front, tls_certs, tmp_path):
    # git over SSH; git-lfs-authenticate hands out an https:// href on the front
    key = sshd_server.add_key(git_http_repo)
    conf = key.path.parent / f"{key.name}.conf"
    plain = f"LFS_BASE='{git_http_server.url}'"
    assert plain in conf.read_text()
    conf.write_text(conf.read_text().replace(plain, f"LFS_BASE='{tls_front.url}'"))
    url = sshd_server.url(git_http_repo)

    def env(where: str, **extra: str) -> dict[str, str]:
        return _env(tmp_path / where, sshd=sshd_server, key=key, **extra)

    proc = run_cli("push", url, APP, env=env("no-ca"))
    assert_error(proc, 1, f"127.0.0.1:{tls_front.port}", "unable to get local issuer certificate")
    _assert_untouched(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=env("push", LFSREG_CA_BUNDLE=str(tls_certs.ca))))
    assert len(_files(git_http_repo.lfs_storage)) == 3
    out = tmp_path / "out.oci"
    assert_ok(run_cli("pull", url, "acme/app:1.0", "-o", f"oci:{out}", env=env("pull", REQUESTS_CA_BUNDLE=str(tls_certs.ca))))
    (image,) = verify_oci_layout(out)
    assert image.diff_ids == source_image(APP).diff_ids
    assert re.search(r'"POST /\S+\.git/info/lfs/objects/batch HTTP/1\.1" 200 ', "\n".join(log_lines(tls_front.access_log)))
