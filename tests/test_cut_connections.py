"""A connection cut (or stalled) at any stage of any exchange is a retry, or one clear error.

Issue 8, "Beyond these cases": a proxy (tests/cutproxy.py) in front of the real servers of
tests/peers/ (nginx + git http-backend + giftless; sshd) breaks the LFS batch request and
response, an error body, upload and download bodies, the smart-HTTP refs and pack exchanges,
and the SSH channel. Whatever happens, the operation either succeeds (a retry healed it) or
raises one of lfsreg's own errors in one line, no traceback and no "internal error"; a push
exits 0 exactly when its tag landed, and a failed push leaves the remote's ``main`` unchanged.

The runs are in-process with a fast retry policy, so a cut that persists (``times=None``)
exhausts the retries in a second instead of a minute; one CLI run checks the same through
the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import fixture, run_cli
from cutproxy import BATCH, RECEIVE_PACK, REFS, STORAGE_GET, STORAGE_PUT, UPLOAD_PACK, Cut, CutProxy
from gitenv import use_cli_env
from imageverify import verify_docker_archive

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import AuthenticationError, LfsregError
from lfsreg.lfs.retry import RetryPolicy
from lfsreg.ssh.settings import SshSettings

pytestmark = pytest.mark.interop
BASE = "docker-archive:" + str(fixture("base.docker.tar"))
APP = "docker-archive:" + str(fixture("app.docker.tar"))
FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05, max_retry_time=20)

# stage -> (operation, rule); the rule's ``times`` is set per test (once, or every time)
PUSH_STAGES = {
    "batch-request": Cut("up", after=10, request=BATCH),
    "batch-response-head": Cut("down", after=12, request=BATCH),
    "batch-response-body": Cut("down", after=20, request=BATCH, body=True),
    "upload-body": Cut("up", after=300, request=STORAGE_PUT),
    "upload-response": Cut("down", after=0, request=STORAGE_PUT),
    "refs-response": Cut("down", after=10, request=REFS, body=True),
    "receive-pack-request": Cut("up", after=200, request=RECEIVE_PACK),
    "receive-pack-response": Cut("down", after=4, request=RECEIVE_PACK, body=True),
}
# the LFS transfer queue retries: one cut at these stages must heal
LFS_RETRIED = {
    "batch-request",
    "batch-response-head",
    "batch-response-body",
    "upload-body",
    "upload-response",
    "download-head",
    "download-body",
}
PULL_STAGES = {
    "batch-response-body": Cut("down", after=20, request=BATCH, body=True),
    "download-head": Cut("down", after=20, request=STORAGE_GET),
    "download-body": Cut("down", after=500, request=STORAGE_GET, body=True),
    "refs-response": Cut("down", after=10, request=REFS, body=True),
    "upload-pack-request": Cut("up", after=20, request=UPLOAD_PACK),
    "upload-pack-response": Cut("down", after=30, request=UPLOAD_PACK, body=True),
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """In-process runs see only this test's HOME and cache."""
    use_cli_env(monkeypatch, tmp_path)
    return tmp_path


def _creds(monkeypatch, server) -> None:
    monkeypatch.setenv("LFSREG_USERNAME", server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", server.password)


def _tags(repo_url: str, cache: Path, monkeypatch, options: RemoteOptions | None = None) -> set[str]:
    monkeypatch.setenv("LFSREG_CACHE", str(cache))
    with lfsreg.Registry(repo_url, options=options) as reg:
        return {f"{t.name}:{t.tag}" for t in reg.tags()}


def _outcome(run) -> LfsregError | None:
    """Run; ``None`` on success, the error otherwise (which must be one of lfsreg's, in one line)."""
    try:
        run()
    except LfsregError as exc:
        text = str(exc)
        assert text and "\n" not in text, f"{type(exc).__name__} is not one line: {text!r}"
        assert "internal error" not in text and "Traceback" not in text
        return exc
    return None


def _seed(git_http_server, git_http_repo, isolated, monkeypatch) -> None:
    """The registry holds base (pushed straight to the server, not through the proxy)."""
    monkeypatch.setenv("LFSREG_CACHE", str(isolated / "seed-cache"))
    with lfsreg.Registry(git_http_repo.url, options=RemoteOptions(policy=FAST)) as reg:
        reg.push([BASE])
        reg.push([APP])


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
@pytest.mark.parametrize("stage", sorted(PUSH_STAGES))
def test_push_through_a_cut(stage, times, git_http_server, git_http_repo, isolated, monkeypatch):
    _creds(monkeypatch, git_http_server)
    monkeypatch.setenv("LFSREG_CACHE", str(isolated / "seed-cache"))
    with lfsreg.Registry(git_http_repo.url, options=RemoteOptions(policy=FAST)) as reg:
        reg.push([BASE])
    before = git_http_repo.main()
    rule = PUSH_STAGES[stage]
    with CutProxy(("127.0.0.1", git_http_server.port), Cut(**{**rule.__dict__, "times": times})) as proxy:
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache"))

        def push() -> None:
            with lfsreg.Registry(proxy.url(git_http_repo.url), options=RemoteOptions(policy=FAST)) as reg:
                reg.push([APP], tags=["acme/cut:1.0"])

        error = _outcome(push)
        assert proxy.fired >= 1, f"the {stage} cut never happened"
    if times == 1 and stage in LFS_RETRIED:
        assert error is None, f"{stage}: one cut must be retried, not {error!r}"
    landed = "acme/cut:1.0" in _tags(git_http_repo.url, isolated / "check", monkeypatch)
    assert (error is None) == landed, f"{stage}: push said {error!r} but the tag {'did' if landed else 'did not'} land"
    if error is not None:
        assert git_http_repo.main() == before


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
@pytest.mark.parametrize("stage", sorted(PULL_STAGES))
def test_pull_through_a_cut(stage, times, git_http_server, git_http_repo, isolated, monkeypatch):
    _creds(monkeypatch, git_http_server)
    _seed(git_http_server, git_http_repo, isolated, monkeypatch)
    before = git_http_repo.main()
    rule = PULL_STAGES[stage]
    out = isolated / "out.tar"
    with CutProxy(("127.0.0.1", git_http_server.port), Cut(**{**rule.__dict__, "times": times})) as proxy:
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache"))  # empty: every layer is downloaded

        def pull() -> None:
            with lfsreg.Registry(proxy.url(git_http_repo.url), options=RemoteOptions(policy=FAST)) as reg:
                reg.pull(["acme/app:1.0"], f"docker-archive:{out}")

        error = _outcome(pull)
        assert proxy.fired >= 1, f"the {stage} cut never happened"
    if times == 1 and stage in LFS_RETRIED:
        assert error is None, f"{stage}: one cut must be retried, not {error!r}"
    if error is None:
        verify_docker_archive(out)
    else:
        assert not out.exists(), "a failed pull left its output behind"
    assert git_http_repo.main() == before


def _pull(url: str, options: RemoteOptions, out: Path) -> None:
    with lfsreg.Registry(url, options=options) as reg:
        reg.pull(["acme/app:1.0"], f"docker-archive:{out}")


def test_cut_error_body_is_one_line(git_http_server, git_http_repo, isolated, monkeypatch):
    """A 401 whose body is cut (refs, then the LFS batch API) is still an authentication error."""
    _creds(monkeypatch, git_http_server)
    _seed(git_http_server, git_http_repo, isolated, monkeypatch)
    monkeypatch.setenv("LFSREG_PASSWORD", "wrong-password")
    for request in (REFS, BATCH):
        with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=5, request=request, body=True, times=None)) as proxy:
            monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache-err"))
            options = RemoteOptions(policy=FAST, lfs_url=proxy.url(git_http_repo.lfs_url) if request == BATCH else None)
            # for the batch API the git side must work: the right credentials in the URL
            url = git_http_repo.auth_url if request == BATCH else proxy.url(git_http_repo.url)
            error = _outcome(lambda u=url, o=options: _pull(u, o, isolated / "o.tar"))
            assert isinstance(error, AuthenticationError), error
            assert proxy.fired >= 1 or request == REFS  # dulwich may hang up before the body comes


def test_cut_through_the_cli_is_one_line(git_http_server, git_http_repo, isolated, monkeypatch):
    _creds(monkeypatch, git_http_server)
    _seed(git_http_server, git_http_repo, isolated, monkeypatch)
    before = git_http_repo.main()
    # the refs exchange: the CLI's default retry policy would spend a minute on a batch API cut
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=20, request=REFS, body=True, times=None)) as proxy:
        env = {**os.environ, "LFSREG_CACHE": str(isolated / "cli-cache"), "LFSREG_RETRIES": "1"}
        proc = run_cli("push", proxy.url(git_http_repo.url), BASE, "--tag", "acme/cli:1.0", env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("lfsreg: error: "), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert git_http_repo.main() == before


# -- SSH -------------------------------------------------------------------------------------------
SSH_CUTS = [("down", 600), ("down", 2500), ("down", 6000), ("up", 1500), ("up", 4000)]


@pytest.mark.parametrize(("direction", "after"), SSH_CUTS, ids=[f"{d}-{n}" for d, n in SSH_CUTS])
def test_ssh_channel_cut(direction, after, sshd_server, git_http_repo, isolated, monkeypatch, git_http_server):
    _creds(monkeypatch, git_http_server)
    _seed(git_http_server, git_http_repo, isolated, monkeypatch)
    before = git_http_repo.main()
    key = sshd_server.add_key(git_http_repo)
    with CutProxy(("127.0.0.1", sshd_server.port), Cut(direction, after=after, times=None)) as proxy:
        known = isolated / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_public}\n")
        ssh = SshSettings(identity=str(key.path), known_hosts=str(known))
        url = f"ssh://{sshd_server.login}@127.0.0.1:{proxy.port}/{git_http_repo.name}.git"
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "ssh-cache"))

        def push() -> None:
            with lfsreg.Registry(url, options=RemoteOptions(policy=FAST, ssh=ssh)) as reg:
                reg.push([APP], tags=["acme/ssh-cut:1.0"])

        error = _outcome(push)
        fired = proxy.fired
    landed = "acme/ssh-cut:1.0" in _tags(git_http_repo.url, isolated / "check", monkeypatch)
    assert (error is None) == landed, f"push said {error!r} but the tag {'did' if landed else 'did not'} land"
    if fired:
        assert error is not None or landed
    if error is not None:
        assert git_http_repo.main() == before
