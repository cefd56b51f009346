"""A stalled exchange, at any stage, is a retry or one clear line, within the timeouts the options set.

Issue 8: the HTTP timeouts (60 s per read, 300 s per LFS request) were fixed, so no test could
make a stall short, and the git side had no timeout at all (a stalled refs advertisement hung
forever). Now ``RemoteOptions(timeout=..., deadline=...)`` (``LFSREG_TIMEOUT``,
``LFSREG_DEADLINE``) set them for LFS and smart HTTP alike. The cut proxy (tests/cutproxy.py)
holds the connection at each stage, in front of the real nginx + git http-backend + giftless:
once, the retry must heal it; every time, the operation fails with one line of lfsreg's own
words (no urllib3 text), leaves the remote's ``main`` unchanged, and does so in bounded time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import fixture, run_cli
from cutproxy import BATCH, RECEIVE_PACK, REFS, STORAGE_GET, STORAGE_PUT, UPLOAD_PACK, VERIFY, Cut, CutProxy
from gitenv import use_cli_env
from imageverify import verify_docker_archive

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import LfsregError, RetriableError
from lfsreg.lfs.retry import RetryPolicy

pytestmark = pytest.mark.interop
BASE = "docker-archive:" + str(fixture("base.docker.tar"))
APP = "docker-archive:" + str(fixture("app.docker.tar"))
FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_retry_time=60)
# A stall that happens every time is timed out once, retried once and timed out again: one retry
# shows it is retried and that the retries end (more would only repeat the wait).
GIVE_UP = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.05, max_retry_time=60)
# A stall that happens once: retries to spare, so a read that is merely slow on a loaded machine
# (a spurious timeout) cannot turn the healed case into a failure.
HEAL = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05, max_retry_time=60)
TIMEOUT = 1.5  # seconds per read: a local peer's answer starts well within it, even on a loaded machine
HOLD = 60.0  # how long the proxy holds a stalled connection (far past TIMEOUT)

PUSH_STALLS = {
    "batch-request": Cut("up", after=10, request=BATCH, stall=HOLD),
    "batch-response": Cut("down", after=20, request=BATCH, body=True, stall=HOLD),
    "upload-body": Cut("up", after=300, request=STORAGE_PUT, stall=HOLD),
    "verify-response": Cut("down", after=0, request=VERIFY, stall=HOLD),
    "refs-response": Cut("down", after=10, request=REFS, body=True, stall=HOLD),
    "receive-pack-response": Cut("down", after=0, request=RECEIVE_PACK, stall=HOLD),
}
PULL_STALLS = {
    "batch-response": Cut("down", after=20, request=BATCH, body=True, stall=HOLD),
    "download-body": Cut("down", after=500, request=STORAGE_GET, body=True, stall=HOLD),
    "refs-response": Cut("down", after=10, request=REFS, body=True, stall=HOLD),
    "upload-pack-response": Cut("down", after=30, request=UPLOAD_PACK, body=True, stall=HOLD),
}
RAW = ("HTTPConnectionPool", "urllib3", "Max retries", "Caused by", "Read timed out", "ReadTimeout", "IncompleteRead")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """In-process runs see only this test's HOME and cache."""
    use_cli_env(monkeypatch, tmp_path)
    return tmp_path


def _options(times: int | None) -> RemoteOptions:
    return RemoteOptions(policy=HEAL if times == 1 else GIVE_UP, timeout=TIMEOUT)


def _outcome(run) -> LfsregError | None:
    """Run; ``None`` on success, else the error: lfsreg's own, one line, in lfsreg's words."""
    try:
        run()
    except LfsregError as exc:
        text = str(exc)
        assert text and "\n" not in text, f"{type(exc).__name__} is not one line: {text!r}"
        assert not any(raw in text for raw in RAW), f"the HTTP library's words leak: {text!r}"
        return exc
    return None


def _tags(url: str, cache: Path, monkeypatch) -> set[str]:
    monkeypatch.setenv("LFSREG_CACHE", str(cache))
    with lfsreg.Registry(url) as reg:
        return {f"{t.name}:{t.tag}" for t in reg.tags()}


def _seed(git_http_server, git_http_repo, isolated, monkeypatch, *sources: str) -> None:
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    monkeypatch.setenv("LFSREG_CACHE", str(isolated / "seed-cache"))
    with lfsreg.Registry(git_http_repo.url, options=RemoteOptions(policy=FAST)) as reg:
        for source in sources:
            reg.push([source])


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
@pytest.mark.parametrize("stage", sorted(PUSH_STALLS))
def test_push_through_a_stall(stage, times, git_http_server, git_http_repo, isolated, monkeypatch):
    _seed(git_http_server, git_http_repo, isolated, monkeypatch, BASE)
    before = git_http_repo.main()
    rule = PUSH_STALLS[stage]
    with CutProxy(("127.0.0.1", git_http_server.port), Cut(**{**rule.__dict__, "times": times})) as proxy:
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache"))

        def push() -> None:
            with lfsreg.Registry(proxy.url(git_http_repo.url), options=_options(times)) as reg:
                reg.push([APP], tags=["acme/stall:1.0"])

        started = time.monotonic()
        error = _outcome(push)
        took = time.monotonic() - started
        assert proxy.fired >= 1, f"the {stage} stall never happened"
    assert took < HOLD, f"{stage}: the stall was waited out ({took:.0f} s), not timed out"
    landed = "acme/stall:1.0" in _tags(git_http_repo.url, isolated / "check", monkeypatch)
    if times == 1 or stage in ("receive-pack-response", "verify-response"):
        # once: the retry heals it. A lost answer to the push: the branch, read again, says it
        # landed. A lost answer to every verify: the fresh batch call finds the objects stored.
        assert error is None, f"{stage}: {error!r}"
    else:
        assert isinstance(error, RetriableError), f"{stage}: {error!r}"
        assert "stalled" in str(error) or "sent nothing" in str(error), error
    assert (error is None) == landed, f"{stage}: push said {error!r} but the tag {'did' if landed else 'did not'} land"
    if error is not None:
        assert git_http_repo.main() == before
    else:  # exactly one new commit: a push is never applied twice
        assert _parent(git_http_repo) == before


def _parent(repo) -> str | None:
    from dulwich.repo import Repo

    with Repo(str(repo.path)) as r:
        parents = r[repo.main().encode()].parents
    return parents[0].decode() if parents else None


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
@pytest.mark.parametrize("stage", sorted(PULL_STALLS))
def test_pull_through_a_stall(stage, times, git_http_server, git_http_repo, isolated, monkeypatch):
    _seed(git_http_server, git_http_repo, isolated, monkeypatch, BASE, APP)
    before = git_http_repo.main()
    out = isolated / "out.tar"
    rule = PULL_STALLS[stage]
    with CutProxy(("127.0.0.1", git_http_server.port), Cut(**{**rule.__dict__, "times": times})) as proxy:
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache"))  # empty: every layer is downloaded

        def pull() -> None:
            with lfsreg.Registry(proxy.url(git_http_repo.url), options=_options(times)) as reg:
                reg.pull(["acme/app:1.0"], f"docker-archive:{out}")

        started = time.monotonic()
        error = _outcome(pull)
        took = time.monotonic() - started
        assert proxy.fired >= 1, f"the {stage} stall never happened"
    assert took < HOLD, f"{stage}: the stall was waited out ({took:.0f} s), not timed out"
    if times == 1:
        assert error is None, f"{stage}: {error!r}"
        verify_docker_archive(out)
    else:
        assert isinstance(error, RetriableError), f"{stage}: {error!r}"
        assert not out.exists(), "a failed pull left its output behind"
    assert git_http_repo.main() == before


def test_deadline_bounds_a_response_that_keeps_the_read_timeout(git_http_server, git_http_repo, isolated, monkeypatch):
    """A batch response held 6 s (shorter than the read timeout) passes the 2 s deadline: retried, then fine."""
    _seed(git_http_server, git_http_repo, isolated, monkeypatch, BASE, APP)
    rule = Cut("down", after=20, request=BATCH, body=True, stall=6.0, then_resume=True, times=1)
    with CutProxy(("127.0.0.1", git_http_server.port), rule) as proxy:
        monkeypatch.setenv("LFSREG_CACHE", str(isolated / "cache"))
        seen: list[float] = []
        policy = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05, sleep=seen.append)
        options = RemoteOptions(policy=policy, timeout=30.0, deadline=2.0)
        started = time.monotonic()
        with lfsreg.Registry(proxy.url(git_http_repo.url), options=options) as reg:
            reg.pull(["acme/app:1.0"], f"docker-archive:{isolated / 'out.tar'}")
        assert proxy.fired == 1
    assert seen, "the held batch response was not cut by the deadline and retried"
    assert time.monotonic() - started < 30


def test_stall_through_the_cli_is_one_line(git_http_server, git_http_repo, isolated, monkeypatch):
    """LFSREG_TIMEOUT and LFSREG_RETRIES reach the CLI's options: a stalled refs answer fails fast, in one line."""
    _seed(git_http_server, git_http_repo, isolated, monkeypatch, BASE)
    before = git_http_repo.main()
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=10, request=REFS, body=True, stall=HOLD, times=None)) as proxy:
        env = {**os.environ, "LFSREG_CACHE": str(isolated / "cli"), "LFSREG_TIMEOUT": str(TIMEOUT), "LFSREG_RETRIES": "1"}
        started = time.monotonic()
        proc = run_cli("push", proxy.url(git_http_repo.url), APP, "--tag", "acme/cli:1.0", env=env)
        took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("lfsreg: error: "), proc.stderr
    assert "stalled" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not any(raw in proc.stderr for raw in RAW), proc.stderr
    assert took < HOLD
    assert git_http_repo.main() == before


@pytest.mark.parametrize(("name", "value"), [("LFSREG_TIMEOUT", "soon"), ("LFSREG_TIMEOUT", "0"), ("LFSREG_DEADLINE", "-5")])
def test_a_bad_timeout_is_a_usage_error(name, value, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "LFSREG_CACHE": str(tmp_path / "cache"), name: value}
    proc = run_cli("tags", "http://127.0.0.1:1/org/images.git", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"lfsreg: error: {name}: expected a number of seconds"), proc.stderr
