"""Running the ``lfsreg`` command from tests: in this process (fast) or as a subprocess.

In-process runs call :func:`lfsreg.cli.main` -- the same entry point ``python -m lfsreg`` and
the ``lfsreg`` script use -- inside click's :class:`~click.testing.CliRunner` isolation (its
own stdin, stdout, stderr and environment), from the test's working directory or ``cwd``.
What a fresh process would not inherit is reset around each run: the root logger's handlers,
the SIGTERM handler, the temporary directory ``tempfile`` cached, lfsreg's per-process staging
sweep memo. An exception the CLI lets escape is printed as Python would print it (a
``Traceback``), and so are unraisable exceptions (``Exception ignored in: ...``, e.g. from a
``__del__`` run by the garbage collector after the command) and exceptions in threads.

Every run -- in-process or not -- fails the test when stderr or stdout holds a ``Traceback``
or ``Exception ignored``, unless the caller says it expects one (``traceback_ok=True``).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

import pytest

CLI_TIMEOUT = 120
#: What a crash, or an error the CLI swallowed, leaves on stderr.
CRASH_MARKERS = ("Traceback", "Exception ignored")
_LOGGERS = ("", "urllib3", "paramiko", "lfsreg")


def crash_in(proc: subprocess.CompletedProcess) -> str | None:
    """The first crash marker in ``proc``'s stderr or stdout, if any."""
    for marker in CRASH_MARKERS:
        for stream in (proc.stderr, proc.stdout):
            if isinstance(stream, bytes):
                stream = stream.decode(errors="replace")
            if stream and marker in stream:
                return marker
    return None


def check_no_crash(proc: subprocess.CompletedProcess, what: str = "lfsreg") -> subprocess.CompletedProcess:
    """Fail the test when ``proc`` printed a traceback or an ignored exception; return ``proc``."""
    marker = crash_in(proc)
    if marker is not None:
        args = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))
        pytest.fail(
            f"{what}: {marker!r} in the output of {args}\nexit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def check_no_crash_text(stderr: str, stdout: str = "", what: str = "lfsreg") -> None:
    """:func:`check_no_crash` for the output of a process a test ran itself (``Popen.communicate``)."""
    check_no_crash(subprocess.CompletedProcess(what, 0, stdout, stderr), what)


def without_coverage(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without what makes coverage measure a Python subprocess.

    For a process that must not write coverage data at exit, e.g. one run under a file-size
    limit (its data file would hit the limit: a traceback from coverage's atexit hook).
    """
    return {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("COVERAGE_")}


def _env_overrides(env: dict[str, str] | None) -> dict[str, str | None] | None:
    """``env`` (a whole environment, as ``subprocess`` takes it) as CliRunner's overrides."""
    if env is None:
        return None
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update({k: str(v) for k, v in env.items() if os.environ.get(k) != v})
    return overrides


def _print_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    # What the interpreter's default hook prints, written to the (captured) sys.stderr.
    where = unraisable.err_msg or "Exception ignored in"
    lines = [f"{where}: {unraisable.object!r}\n"]
    if unraisable.exc_type is not None:
        lines += traceback.format_exception(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
    sys.stderr.write("".join(lines))


def _reset_process_state() -> None:
    """What a new ``lfsreg`` process starts with, for the module state tests can observe."""
    from lfsreg import staging

    staging._swept.clear()  # each process sweeps abandoned staging files once per directory
    staging._closed = False
    tempfile.tempdir = None  # re-read TMPDIR


def run_in_process(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    """``lfsreg ARGV`` through :func:`lfsreg.cli.main` in this process (main thread only)."""
    import click.formatting
    from click.testing import CliRunner

    from lfsreg.cli import main

    assert threading.current_thread() is threading.main_thread(), "in-process CLI runs need the main thread"
    root = logging.getLogger()
    saved_handlers = {name: list(logging.getLogger(name).handlers) for name in _LOGGERS}
    saved_levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    saved_sigterm = signal.getsignal(signal.SIGTERM)
    saved_unraisable, saved_thread_hook = sys.unraisablehook, threading.excepthook
    old_cwd = os.getcwd()
    root.handlers = []  # the CLI's logging.basicConfig() configures a fresh process's root logger
    code: int = 0
    try:
        with CliRunner().isolation(env=_env_overrides(env)) as (out, err, _):
            sys.unraisablehook = _print_unraisable
            threading.excepthook = threading.__excepthook__  # prints to the captured sys.stderr
            _reset_process_state()
            # Help text is wrapped to the terminal's width: a process whose stdout is a pipe
            # wraps as shutil.get_terminal_size() falls back (COLUMNS, else 80), minus 2.
            click.formatting.FORCED_WIDTH = max(min(shutil.get_terminal_size().columns, 80) - 2, 50)
            try:
                if cwd is not None:
                    os.chdir(cwd)
                main(list(argv))
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:  # sys.exit("message")
                    print(exc.code, file=sys.stderr)
                    code = 1
            except BaseException:  # what the interpreter prints for an uncaught exception
                traceback.print_exc(file=sys.stderr)
                code = 1
            finally:
                os.chdir(old_cwd)
                gc.collect()  # objects dropped by the command: their __del__ runs now, in the capture
                _reset_process_state()
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = out.getvalue(), err.getvalue()
    finally:
        sys.unraisablehook, threading.excepthook = saved_unraisable, saved_thread_hook
        signal.signal(signal.SIGTERM, saved_sigterm)
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            for handler in logger.handlers:
                if handler not in saved_handlers[name]:
                    handler.close()
            logger.handlers = saved_handlers[name]
            logger.setLevel(saved_levels[name])
    return subprocess.CompletedProcess(
        ["lfsreg", *argv], code, stdout.decode("utf-8", errors="replace"), stderr.decode("utf-8", errors="replace")
    )


def run_subprocess(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | str | None = None, python: str = sys.executable
) -> subprocess.CompletedProcess:
    """``python -m lfsreg ARGV`` in a new process."""
    return subprocess.run(
        [python, "-m", "lfsreg", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def run_cli(
    *args: object,
    env: dict | None = None,
    cwd: Path | None = None,
    python: str = sys.executable,
    spawn: bool = False,
    traceback_ok: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``lfsreg ARGS`` and capture text output (as a :class:`subprocess.CompletedProcess`).

    In this process by default (see the module docstring); in a new ``python -m lfsreg``
    process when ``spawn`` is true, when ``python`` is another interpreter, or when called
    from a thread other than the main one (stdio, environment and working directory are
    process-wide). Fails the test on a ``Traceback`` or ``Exception ignored`` in the output
    unless ``traceback_ok``.
    """
    argv = [str(a) for a in args]
    spawn = spawn or python != sys.executable or threading.current_thread() is not threading.main_thread()
    proc = run_subprocess(argv, env, cwd, python) if spawn else run_in_process(argv, env, cwd)
    return proc if traceback_ok else check_no_crash(proc)
