"""Races forced, not hoped for: each path of the publish loop is made to happen, and checked.

* the branch moves between the read of the tip and the compare-and-swap (another push lands
  in between, run from a hook on ``swap``): the change set is re-applied on the new tip;
* the branch's ``.lock`` is held by a live process (this one): the push waits, then lands
  once it is released (a local registry, and a ``file://`` remote where dulwich takes the lock);
* the branch moves before every attempt: the push gives up after the last one, with one clear
  line and exit code 1; a lock held for longer than the wait: the same.

Each test asserts that its race really happened (the hook ran, the losing swap returned
``False``, the waiter was seen waiting) before it checks the outcome.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dulwich.repo import Repo
from imageverify import FIXTURES

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.cli import main as cli_main
from lfsreg.git import locks
from lfsreg.git import remote as git_remote
from lfsreg.git import store as git_store
from lfsreg.registry import location, transaction

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
WAIT = 60.0  # seconds a test waits for the other side of a race before failing


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))


def _history(repo: Path) -> list[bytes]:
    """Commits of main, newest first; asserts the history is linear."""
    r = Repo(str(repo))
    out = []
    for entry in r.get_walker(include=[r.refs[b"refs/heads/main"]]):
        assert len(entry.commit.parents) <= 1
        out.append(entry.commit.id)
    return out


def _tags(location_: str) -> set[str]:
    with lfsreg.Registry(location_) as reg:
        return {f"{t.name}:{t.tag}" for t in reg.tags()}


def _push(location_: str, source: str, tag: str, cache: Path | None = None) -> str | None:
    options = RemoteOptions(cache_dir=str(cache)) if cache else None
    with lfsreg.Registry(location_, options=options) as reg:
        return reg.push([source], tags=[tag]).commit


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The CLI in this process (so the hooks apply): exit code and stderr."""
    handler = signal.getsignal(signal.SIGTERM)  # the CLI installs its own; pytest's comes back
    try:
        with pytest.raises(SystemExit) as info:
            cli_main([str(a) for a in argv])
    finally:
        signal.signal(signal.SIGTERM, handler)
    return int(info.value.code or 0), capsys.readouterr().err


def _locations(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    repo = tmp_path / "reg.git"
    return {"path": (repo, str(repo)), "file-url": (repo, f"file://{repo}")}


def _swap_hook(monkeypatch: pytest.MonkeyPatch, before_swap: Callable[[int], None]) -> list[bool]:
    """Run ``before_swap(n)`` before the n-th swap of the pusher under test; return the swaps' results."""
    results: list[bool] = []
    inside = threading.local()

    def wrap(original: Callable[..., bool]) -> Callable[..., bool]:
        def swap(self: object, old: str | None, new: str) -> bool:
            if getattr(inside, "interloper", False):  # the interloper's own pushes are not hooked
                return original(self, old, new)
            inside.interloper = True
            try:
                before_swap(len(results))
            finally:
                inside.interloper = False
            results.append(original(self, old, new))
            return results[-1]

        return swap

    monkeypatch.setattr(location.LocalBackend, "swap", wrap(location.LocalBackend.swap))
    monkeypatch.setattr(location.RemoteBackend, "swap", wrap(location.RemoteBackend.swap))
    return results


@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_branch_moved_between_fetch_and_push_is_reapplied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    repo, where = _locations(tmp_path)[kind]
    lfsreg.Registry(str(repo)).init()
    landed: list[str | None] = []

    def interloper(n: int) -> None:
        if n == 0:  # only before the first attempt: the second must win
            landed.append(_push(str(repo), TOOL, "race/other:1", cache=tmp_path / "other-cache"))

    results = _swap_hook(monkeypatch, interloper)
    commit = _push(where, APP, "race/mine:1")
    assert landed and landed[0] is not None, "the interloper did not push"
    assert results == [False, True], "the first compare-and-swap should have lost the race, the second won"
    assert _tags(str(repo)) == {"race/other:1", "race/mine:1"}
    history = _history(repo)
    assert history[0].decode() == commit and history[1].decode() == landed[0]  # re-applied on top of the other push
    assert len(history) == 3  # init, the other push, this one


@pytest.mark.interop
def test_branch_moved_between_fetch_and_push_over_http_is_reapplied(
    git_http_server, git_http_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race against stock ``git http-backend``: receive-pack refuses the stale update, lfsreg re-applies."""
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    url = git_http_repo.url
    landed: list[str | None] = []

    def interloper(n: int) -> None:
        if n == 0:
            landed.append(_push(url, TOOL, "race/other:1", cache=tmp_path / "other-cache"))

    results = _swap_hook(monkeypatch, interloper)
    commit = _push(url, APP, "race/mine:1")
    assert landed and landed[0] is not None, "the interloper did not push"
    assert results == [False, True], "the first push should have lost the race, the second won"
    history = _history(git_http_repo.path)
    assert [c.decode() for c in history] == [commit, landed[0]]
    assert _tags(url) == {"race/other:1", "race/mine:1"}


def test_giving_up_after_the_last_attempt_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "reg.git"
    lfsreg.Registry(str(repo)).init()
    monkeypatch.setattr(transaction, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(transaction.time, "sleep", lambda s: None)  # the back-off is not what is tested

    def interloper(n: int) -> None:  # the branch moves before every attempt
        _push(str(repo), TOOL, f"race/other:{n}", cache=tmp_path / "other-cache")

    results = _swap_hook(monkeypatch, interloper)
    before = _history(repo)
    code, err = _run_cli(capsys, "push", repo, APP, "--tag", "race/mine:1")
    assert results == [False, False, False], "every attempt should have lost"
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0] == f"lfsreg: error: {repo}: the registry kept changing; gave up after 3 attempts", err
    assert lines[1:] == ["hint: other pushes kept landing first; run the command again (nothing of this one was published)"], err
    assert "race/mine:1" not in _tags(str(repo))
    assert len(_history(repo)) == len(before) + 3  # the three interlopers', nothing of ours


# -- a held lock ----------------------------------------------------------------------------------
class HeldLock:
    """``<ref>.lock`` created and held open by this process, as a concurrent git writer holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.path.unlink()


@pytest.fixture
def held() -> Iterator[list[HeldLock]]:
    taken: list[HeldLock] = []
    yield taken
    for lock in taken:
        lock.release()


def _seen(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> threading.Event:
    """An event set when ``module.name`` (a function) is first called; the call goes through."""
    event = threading.Event()
    original = getattr(module, name)

    def spy(*args: object, **kwargs: object) -> object:
        event.set()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return event


def _push_in_thread(where: str) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(_push(where, APP, "lock/mine:1"))
        except BaseException as exc:  # reported by the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_push_waits_for_a_held_branch_lock_then_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: list[HeldLock], kind: str
) -> None:
    repo, where = _locations(tmp_path)[kind]
    lfsreg.Registry(str(repo)).init()
    before = _history(repo)
    monkeypatch.setattr(locks, "LOCK_WAIT", 4 * WAIT)  # the push must outwait this test, however loaded the machine
    # Where each kind notices the lock: git.store waits for it; the file:// remote re-applies.
    waiting = _seen(monkeypatch, git_store, "_wait") if kind == "path" else _seen(monkeypatch, git_remote.GitRemote, "_locked")
    held.append(HeldLock(repo / "refs" / "heads" / "main.lock"))
    thread, outcome = _push_in_thread(where)
    assert waiting.wait(WAIT), "the push never met the held lock"
    assert thread.is_alive() and not outcome, "the push finished while the lock was held"
    assert _history(repo) == before
    held[0].release()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], str), outcome
    assert _history(repo)[0].decode() == outcome[0]
    assert _tags(str(repo)) == {"lock/mine:1"}


@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_a_lock_held_past_the_wait_gives_up_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], held: list[HeldLock], kind: str
) -> None:
    repo, where = _locations(tmp_path)[kind]
    lfsreg.Registry(str(repo)).init()
    before = _history(repo)
    monkeypatch.setattr(locks, "LOCK_WAIT", 1.0)
    waiting = _seen(monkeypatch, git_store, "_wait") if kind == "path" else _seen(monkeypatch, git_remote.GitRemote, "_locked")
    held.append(HeldLock(repo / "refs" / "heads" / "main.lock"))
    code, err = _run_cli(capsys, "push", where, APP, "--tag", "lock/mine:1")
    assert waiting.is_set(), "the push never met the held lock"
    assert code == 1, err
    first = err.strip().splitlines()[0]
    if kind == "path":
        assert first == f"lfsreg: error: {held[0].path}: held by process {os.getpid()} for more than 1 s", err
    else:
        assert first == f"lfsreg: error: {where}: refs/heads/main stayed locked for 1 s", err
    assert "Traceback" not in err and "internal error" not in err
    assert _history(repo) == before


@pytest.mark.interop
def test_a_branch_lock_held_on_the_http_server_is_retried_then_lands(
    git_http_server, git_http_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: list[HeldLock]
) -> None:
    """Stock receive-pack cannot lock the branch (this process holds ``main.lock``): lfsreg retries until it is free."""
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    url = git_http_repo.url
    _push(url, TOOL, "lock/first:1")
    before = _history(git_http_repo.path)
    monkeypatch.setattr(locks, "LOCK_WAIT", 4 * WAIT)
    waiting = _seen(monkeypatch, git_remote.GitRemote, "_locked")
    held.append(HeldLock(git_http_repo.path / "refs" / "heads" / "main.lock"))
    thread, outcome = _push_in_thread(url)
    assert waiting.wait(WAIT), "the push never met the held lock"
    assert thread.is_alive() and not outcome, "the push finished while the lock was held"
    assert _history(git_http_repo.path) == before
    held[0].release()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], str), outcome
    assert _history(git_http_repo.path)[0].decode() == outcome[0]
    assert _tags(url) == {"lock/first:1", "lock/mine:1"}


@pytest.mark.interop
def test_a_branch_lock_held_on_the_http_server_past_the_wait_gives_up_with_one_line(
    git_http_server,
    git_http_repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    held: list[HeldLock],
) -> None:
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    url = git_http_repo.url
    _push(url, TOOL, "lock/first:1")
    before = _history(git_http_repo.path)
    monkeypatch.setattr(locks, "LOCK_WAIT", 1.0)
    waiting = _seen(monkeypatch, git_remote.GitRemote, "_locked")
    held.append(HeldLock(git_http_repo.path / "refs" / "heads" / "main.lock"))
    code, err = _run_cli(capsys, "push", url, APP, "--tag", "lock/mine:1")
    assert waiting.is_set(), "the push never met the held lock"
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"lfsreg: error: {url}: refs/heads/main stayed locked for 1 s: "), err
    assert "cannot lock ref 'refs/heads/main'" in lines[0] and "main.lock" in lines[0], err  # git's own words, passed on
    assert lines[1:] == ["hint: if no other push is running, remove the stale refs/heads/main.lock in the server's repository"], err
    assert "Traceback" not in err and "internal error" not in err
    assert _history(git_http_repo.path) == before
