"""``lfsreg serve`` as a command (announce, -v request log, SIGTERM/SIGINT stop, usage errors), its
access control (htpasswd with bcrypt, tokens, read-only), and freshness (a push by someone else
is served within ``--refresh``).
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time

import pytest
import requests

import lfsreg
from tests.clirun import check_no_crash, run_cli
from tests.conftest import FIXTURES
from tests.gitenv import cli_env, require_tool
from tests.servehelp import free_env, serving


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.close()
    return path


def start(tmp_path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``lfsreg [-v] serve ... --format json`` in a new process; its URL once it listens."""
    argv = [sys.executable, "-m", "lfsreg", *args, "--listen", "127.0.0.1:0", "--format", "json"]
    # PYTHONFAULTHANDLER: a process that hangs is sent SIGABRT (stopped()), and prints every thread's stack
    env = {**cli_env(tmp_path), "PYTHONFAULTHANDLER": "1"}
    # SIGINT as a terminal gives it: a suite started as a background job of a script ignores SIGINT in
    # every process below it, and a Python started so installs no KeyboardInterrupt handler at all
    # (the SIGINT case then waited 30 s for an exit that could not come).
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise AssertionError(f"lfsreg serve did not start: {proc.communicate(timeout=30)[1]}")
    return proc, json.loads(line)["url"]


def stopped(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """``proc``'s output once it exits; if it hangs, fail with the stacks of its threads (faulthandler)."""
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"lfsreg serve did not stop within 30 s; its threads:\n{err[-6000:]}") from None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_command_announces_logs_requests_and_stops_cleanly(tmp_path, repo, sig):
    proc, url = start(tmp_path, "-v", "serve", str(repo))
    try:
        assert requests.get(f"{url}/v2/acme/app/tags/list", timeout=30).json()["tags"] == ["1.0"]
        with requests.Session() as idle:  # a keep-alive connection left open does not hold the stop up
            idle.get(f"{url}/v2/", timeout=30)
            started = time.monotonic()
            proc.send_signal(sig)
            out, err = stopped(proc)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    check_no_crash(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert proc.returncode == 0, err
    assert '"GET /v2/acme/app/tags/list" 200' in err  # the request log of -v
    assert err.rstrip().endswith("lfsreg serve: stopped")


def test_serve_usage_errors_are_one_line(tmp_path, repo):
    bad = run_cli("serve", str(repo), "--listen", "nowhere", env=cli_env(tmp_path))
    assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr
    refresh = run_cli("serve", str(repo), "--refresh", "0", env=cli_env(tmp_path))
    assert refresh.returncode == 2 and "--refresh" in refresh.stderr
    missing = run_cli("serve", str(tmp_path / "nothing.git"), "--listen", "127.0.0.1:0", env=cli_env(tmp_path))
    assert missing.returncode == 1 and missing.stderr.startswith("lfsreg: error:")
    with serving(repo) as srv:  # a port in use
        busy = run_cli("serve", str(repo), "--listen", srv.url.removeprefix("http://"), env=cli_env(tmp_path))
        assert busy.returncode == 2 and "--listen" in busy.stderr


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_htpasswd_users_must_log_in(tmp_path, repo):
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "s3cret"], check=True, capture_output=True)
    with serving(repo, htpasswd=str(users)) as srv:
        for headers in ({}, basic("alice", "wrong"), basic("bob", "s3cret"), {"Authorization": "Basic !!"}):
            resp = requests.get(f"{srv.url}/v2/", headers=headers, timeout=30)
            assert resp.status_code == 401
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="lfsreg"'
            assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"
            assert "s3cret" not in resp.text
        ok = requests.get(f"{srv.url}/v2/acme/app/tags/list", headers=basic("alice", "s3cret"), timeout=30)
        assert ok.status_code == 200
        skopeo = require_tool("skopeo")
        host = srv.url.removeprefix("http://")
        argv = [
            skopeo,
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "alice:s3cret",
            f"docker://{host}/acme/app:1.0",
            f"oci:{tmp_path / 'out'}:x",
        ]
        proc = subprocess.run(argv, env=free_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        denied = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", f"docker://{host}/acme/app:1.0"],
            env=free_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert denied.returncode != 0 and ("401" in denied.stderr or "unauthorized" in denied.stderr.lower())


def test_tokens_as_bearer_or_as_password_and_read_only(tmp_path, repo):
    tokens = tmp_path / "tokens"
    tokens.write_text("# ci\ntok-one\ntok-two\n")
    with serving(repo, token_file=str(tokens), read_only=True) as srv:
        assert requests.get(f"{srv.url}/v2/", headers={"Authorization": "Bearer tok-two"}, timeout=30).status_code == 200
        assert requests.get(f"{srv.url}/v2/", headers=basic("ci", "tok-one"), timeout=30).status_code == 200
        assert requests.get(f"{srv.url}/v2/", headers={"Authorization": "Bearer tok-three"}, timeout=30).status_code == 401
        assert requests.get(f"{srv.url}/v2/", headers={"Authorization": "Bearer "}, timeout=30).status_code == 401
        put = requests.put(f"{srv.url}/v2/acme/app/manifests/2.0", data=b"{}", headers={"Authorization": "Bearer tok-one"}, timeout=30)
        assert put.status_code == 403 and put.json()["errors"][0]["code"] == "DENIED"
        assert not srv.writable


def test_a_push_by_someone_else_is_served_within_refresh(tmp_path, repo):
    with serving(repo, refresh=0.5) as srv:
        assert requests.get(f"{srv.url}/v2/acme/app/tags/list", timeout=30).json()["tags"] == ["1.0"]
        with lfsreg.Registry(str(repo)) as other:
            other.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:2.0"])
        pushed = time.monotonic()
        while requests.get(f"{srv.url}/v2/acme/app/tags/list", timeout=30).json()["tags"] != ["1.0", "2.0"]:
            assert time.monotonic() - pushed < 3, "the new tag was not served within --refresh"
            time.sleep(0.05)
        assert requests.get(f"{srv.url}/v2/acme/app/manifests/2.0", timeout=30).status_code == 200
