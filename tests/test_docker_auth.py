"""The distribution client's rules, without a registry: references, challenges, credential sources, realms, retries.

* ``docker://`` references: host or Docker Hub, ``library/``, tag, digest, bad ones refused.
* ``WWW-Authenticate`` parsing (Bearer with quoted commas, Basic).
* credentials from ``$DOCKER_CONFIG/config.json`` (base64 ``auth``, ``https://HOST/v1/`` keys) and
  ``$REGISTRY_AUTH_FILE``; another host's entry is never used; a credential helper only when
  ``LFSREG_DOCKER_CREDENTIAL_HELPER=1`` and present.
* where credentials may go: a realm that downgrades HTTPS to HTTP is refused, a plain-HTTP realm
  on another host gets none, HTTPS realms and loopback pairs get them.
* a registry answering 503 with ``Retry-After: 0`` is asked 1 + 8 times (the retry policy), quickly,
  and the failure is one line.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from canned_http import canned_server
from conftest import run_cli
from gitenv import cli_env

from lfsreg.distribution.auth import AuthSources, is_loopback, parse_challenges, realm_may_receive
from lfsreg.errors import InvalidReference, ProtocolError
from lfsreg.transports.docker_registry import parse


@pytest.mark.parametrize(
    ("text", "host", "name", "tag", "digest"),
    [
        ("//127.0.0.1:5000/lfsreg/small:1", "127.0.0.1:5000", "lfsreg/small", "1", None),
        ("//localhost/a/b", "localhost", "a/b", None, None),
        ("//busybox:1.36", "registry-1.docker.io", "library/busybox", "1.36", None),
        ("//ghcr.io/org/img@sha256:" + "a" * 64, "ghcr.io", "org/img", None, "sha256:" + "a" * 64),
        ("//org/img:2", "registry-1.docker.io", "org/img", "2", None),
    ],
)
def test_reference_parsing(text, host, name, tag, digest):
    ref = parse(text)
    assert (ref.host, ref.name, ref.tag, str(ref.digest) if ref.digest else None) == (host, name, tag, digest)


@pytest.mark.parametrize(
    "text", ["127.0.0.1:5000/x:1", "//127.0.0.1:5000/", "//127.0.0.1:5000/UPPER:1", "//h.io/x:bad tag", "//h.io/x@sha256:12"]
)
def test_bad_references_refused(text):
    with pytest.raises(InvalidReference):
        parse(text)


def test_destination_host_only():
    ref = parse("//127.0.0.1:5000", name_required=False)
    assert (ref.host, ref.name) == ("127.0.0.1:5000", "")


def test_challenges():
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
    }
    basic, bearer2 = parse_challenges('Basic realm="x y", Bearer realm="https://t/token"')
    assert (basic.scheme, basic.params["realm"], bearer2.params["realm"]) == ("basic", "x y", "https://t/token")


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_docker_config_and_auth_file(tmp_path: Path):
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(
        json.dumps({"auths": {"https://reg.example.com/v1/": _auth("alice", "pw:with:colons"), "other.example.com": _auth("eve", "x")}})
    )
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"127.0.0.1:5000": _auth("bob", "b")}}))
    sources = AuthSources.from_environment({"HOME": str(tmp_path), "DOCKER_CONFIG": str(docker), "REGISTRY_AUTH_FILE": str(auth_file)})
    alice = sources.lookup("reg.example.com")
    assert alice is not None and (alice.username, alice.password) == ("alice", "pw:with:colons")
    assert "pw:with" not in repr(alice)
    bob = sources.lookup("127.0.0.1:5000")
    assert bob is not None and bob.username == "bob"
    assert sources.lookup("127.0.0.1:5001") is None  # another port is another host
    assert sources.lookup("third.example.com") is None


def test_credential_helper_only_when_asked(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\": \\"helped\\", \\"Secret\\": \\"s3\\"}"\n')
    helper.chmod(0o755)
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"auths": {}, "credHelpers": {"reg.example.com": "fake"}}))
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(docker)}
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bindir}:{old_path}"
    try:
        assert AuthSources.from_environment(env).lookup("reg.example.com") is None
        cred = AuthSources.from_environment({**env, "LFSREG_DOCKER_CREDENTIAL_HELPER": "1"}).lookup("reg.example.com")
    finally:
        os.environ["PATH"] = old_path
    assert cred is not None and (cred.username, cred.password) == ("helped", "s3")


def test_realm_policy():
    assert realm_may_receive("https://auth.docker.io/token", "https", "registry-1.docker.io")
    assert realm_may_receive("https://other.example.com/token", "http", "10.1.2.3:5000")
    assert realm_may_receive("http://localhost:9/token", "http", "127.0.0.1:5000")
    assert not realm_may_receive("http://auth.example.com/token", "http", "reg.example.com")  # cleartext elsewhere: none
    with pytest.raises(ProtocolError, match="downgrade"):
        realm_may_receive("http://auth.example.com/token", "https", "reg.example.com")
    with pytest.raises(ProtocolError):
        realm_may_receive("file:///etc/passwd", "https", "reg.example.com")
    assert is_loopback("127.0.0.2:80") and is_loopback("[::1]:5000") and not is_loopback("10.0.0.1")


def test_retry_after_is_obeyed_and_counted(tmp_path: Path):
    env = cli_env(tmp_path)
    with canned_server(503, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}', {"Retry-After": "0"}, "application/json") as server:
        host = server.url.split("/")[2]
        started = time.monotonic()
        proc = run_cli("push", tmp_path / "r.git", f"docker://{host}/x/y:1", env=env)
        elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert len(server.paths) == 9, server.paths  # 1 + RetryPolicy.max_retries, each after Retry-After: 0
    assert elapsed < 20  # the policy's own backoff would wait ~36 s
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("lfsreg: error:") and "503" in lines[0] and "UNAVAILABLE busy" in lines[0], proc.stderr


def test_platform_needs_a_registry_source(tmp_path: Path):
    proc = run_cli("push", tmp_path / "r.git", "oci:/nonexistent", "--platform", "linux/amd64", env=cli_env(tmp_path))
    assert proc.returncode == 2 and "docker://" in proc.stderr
    assert not (tmp_path / "r.git").exists()


def test_copy_points_to_pull_and_push_for_docker_registries(tmp_path: Path):
    env = cli_env(tmp_path)
    out = run_cli("copy", tmp_path / "a.git", "docker://127.0.0.1:9/x", env=env)
    assert out.returncode == 2 and "lfsreg pull" in out.stderr and "-o docker://127.0.0.1:9/x" in out.stderr
    back = run_cli("copy", "docker://127.0.0.1:9/x:1", tmp_path / "b.git", env=env)
    assert back.returncode == 2 and "lfsreg push" in back.stderr
    assert not (tmp_path / "b.git").exists()
