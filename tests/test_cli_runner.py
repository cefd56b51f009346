"""The tests' CLI runner (tests/clirun.py): in-process runs say what a real process says, and crashes fail.

Most CLI runs of the suite happen in the test's process; these tests keep that honest by
running the same commands both ways and comparing exit code, stdout and stderr, and by
checking that a traceback or an ignored exception in a run fails the test that made it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile

import pytest
from clirun import check_no_crash, run_cli
from conftest import assert_ok, sample

import lfsreg.cli.commands


def _both(*args: object, **kwargs: object) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    return run_cli(*args, **kwargs), run_cli(*args, spawn=True, **kwargs)  # type: ignore[arg-type]


def _same(inproc: subprocess.CompletedProcess, spawned: subprocess.CompletedProcess) -> None:
    assert (inproc.returncode, inproc.stdout, inproc.stderr) == (spawned.returncode, spawned.stdout, spawned.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["push", "--help"],
        ["no-such-command"],
        ["images"],
        ["images", "{tmp}/missing.git"],
        ["push", "{tmp}/reg.git", "oci:{tmp}/nothing-here"],
        ["images", "{reg}", "--format", "nope"],
        ["--transfers", "0", "images", "{reg}"],
        ["init", "{reg}"],
        ["tags", "{reg}", "--format", "json"],
        ["inspect", "{reg}", "acme/app:1.0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_in_process_run_matches_a_real_process(tmp_path, registry, args):
    """Exit code, stdout and stderr are the same in-process and in ``python -m lfsreg``."""
    argv = [a.format(tmp=tmp_path, reg=registry) for a in args]
    inproc, spawned = _both(*argv)
    _same(inproc, spawned)


def test_push_and_pull_in_process_match_a_real_process(tmp_path):
    source = f"docker-archive:{sample('fixtures', 'base.docker.tar')}"
    first = run_cli("push", tmp_path / "a.git", source, "--format", "json")
    second = run_cli("push", tmp_path / "b.git", source, "--format", "json", spawn=True)
    assert_ok(first)
    assert_ok(second)
    results = [json.loads(p.stdout) for p in (first, second)]
    for result in results:
        del result["commit"]  # made at different times
    assert results[0] == results[1]
    pulled = [
        run_cli("pull", tmp_path / f"{r}.git", "acme/base:1.0", "-o", f"oci:{tmp_path / r}:x", spawn=s)
        for r, s in (("a", False), ("b", True))
    ]
    assert [p.returncode for p in pulled] == [0, 0]
    assert (tmp_path / "a" / "index.json").read_bytes() == (tmp_path / "b" / "index.json").read_bytes()


def test_environment_and_cwd_are_the_commands_only(tmp_path, registry, monkeypatch):
    """``env`` replaces the environment and ``cwd`` the directory for the run, then both come back."""
    monkeypatch.setenv("LFSREG_RUNNER_PROBE", "outer")
    cwd, env_before = os.getcwd(), dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k != "LFSREG_RUNNER_PROBE"}
    env["TMPDIR"] = str(tmp_path)
    proc = run_cli("images", registry.name, env=env, cwd=registry.parent)  # a relative path: cwd was used
    assert_ok(proc)
    assert os.getcwd() == cwd and dict(os.environ) == env_before
    assert tempfile.gettempdir() != str(tmp_path)


def test_process_state_is_restored(registry):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sigterm = signal.getsignal(signal.SIGTERM)
    hook = sys.unraisablehook
    assert_ok(run_cli("-v", "images", registry))
    assert (list(root.handlers), root.level) == (handlers, level)
    assert signal.getsignal(signal.SIGTERM) == sigterm
    assert sys.unraisablehook is hook


def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


def test_a_traceback_fails_the_test(registry, monkeypatch):
    monkeypatch.setattr(lfsreg.cli.commands, "_registry", _crash)
    with pytest.raises(pytest.fail.Exception, match="Traceback"):
        run_cli("-v", "images", registry)  # -v: main logs the traceback of an internal error
    proc = run_cli("-v", "images", registry, traceback_ok=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RuntimeError: boom" in proc.stderr


class _BadDel:
    def __del__(self) -> None:
        raise OSError(28, "No space left on device")


def test_an_ignored_exception_fails_the_test(registry, monkeypatch):
    """An exception in ``__del__`` (as dulwich's ``_GitFile`` raised on ENOSPC) is reported, not lost."""
    real = lfsreg.cli.commands._registry

    def leaky(repo: str) -> object:
        _BadDel()  # dropped at once: CPython runs __del__ here, the hook prints "Exception ignored"
        return real(repo)

    monkeypatch.setattr(lfsreg.cli.commands, "_registry", leaky)
    with pytest.raises(pytest.fail.Exception, match="Exception ignored"):
        run_cli("images", registry)
    proc = run_cli("images", registry, traceback_ok=True)
    assert proc.returncode == 0 and "Exception ignored" in proc.stderr and "No space left" in proc.stderr


class _Escape(BaseException):
    """Not an Exception: passes every handler of main, as a crash would."""


class _EscapingGroup:
    def main(self, **kwargs: object) -> None:
        raise _Escape("boom")


def test_an_escaping_exception_is_printed_and_exits_1(registry, monkeypatch):
    monkeypatch.setattr(lfsreg.cli, "cli", _EscapingGroup())
    proc = run_cli("images", registry, traceback_ok=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "_Escape: boom" in proc.stderr


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("text", ["Traceback (most recent call last):\n", "Exception ignored in: <x>\n"])
def test_a_subprocess_crash_fails_the_test(stream, text):
    proc = subprocess.CompletedProcess(["lfsreg"], 0, "", "")
    setattr(proc, stream, text)
    with pytest.raises(pytest.fail.Exception):
        check_no_crash(proc)
    clean = subprocess.CompletedProcess(["lfsreg"], 0, "ok\n", "")
    assert check_no_crash(clean) is clean


def test_a_thread_runs_the_cli_in_a_subprocess(registry):
    import threading

    out: list[subprocess.CompletedProcess] = []
    worker = threading.Thread(target=lambda: out.append(run_cli("images", registry, "--format", "json")))
    worker.start()
    worker.join(120)
    assert out and out[0].args[:3] == [sys.executable, "-m", "lfsreg"]
    assert_ok(out[0])
