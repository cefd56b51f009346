"""Several ``lfsreg`` processes released at the same moment (the concurrency tests' racers).

One helper process (the *zygote*) imports lfsreg and what a push or a pull loads, then forks
one process per command line. Each racer is a separate OS process with its own memory,
locks, file descriptors, exit code and output -- sharing with the others only what the test
gives them (a registry, a cache on disk) -- but none of them pays again for the interpreter's
start-up, coverage's start-up and lfsreg's imports (~0.15 s of CPU each under coverage, half a
racer's whole run). Each racer creates its ``ready`` file and waits for the barrier file
before it calls the CLI, so the commands really overlap: start-up is not part of the race.

``SLOW_GIT_INIT=<seconds>`` makes dulwich's object-store creation (inside
``Repo.init_bare``) that much slower, as on a slow or network file system: it widens,
deterministically, the window in which another process can see a half-created repository.
``SLOW_GIT_LOCKS=<seconds>`` keeps every lock of git's lock protocol (``<file>.lock``, taken
by dulwich's GitFile or lfsreg.git.reffiles) that much longer before it is renamed into
place, as on a slow disk: concurrent writers of a ref meet it, and a test can kill a pusher
while it holds one. Both are applied in the zygote, before the fork, so every racer has them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clirun import crash_in, without_coverage

START_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0

# The test hooks of SLOW_GIT_LOCKS and SLOW_GIT_INIT (see the module docstring); also the
# prologue of test_concurrency.DRIVER, the one-process form.
SLOW_HOOKS = r"""
import os, sys, time
slow_locks = float(os.environ.get("SLOW_GIT_LOCKS", "0"))
if slow_locks:
    from dulwich import file as _file
    _close = _file._GitFile.close
    def _slow_close(self):
        if not self._closed:
            time.sleep(slow_locks)
        return _close(self)
    _file._GitFile.close = _slow_close
    from lfsreg.git import reffiles as _reffiles  # lfsreg's own ref writes (refs/heads/*)
    _rename = _reffiles._rename
    def _slow_rename(lock, path):
        time.sleep(slow_locks)
        return _rename(lock, path)
    _reffiles._rename = _slow_rename
delay = float(os.environ.get("SLOW_GIT_INIT", "0"))
if delay:
    from dulwich.object_store import DiskObjectStore
    _init = DiskObjectStore.init.__func__
    def _slow_init(cls, *args, **kwargs):
        time.sleep(delay)
        return _init(cls, *args, **kwargs)
    DiskObjectStore.init = classmethod(_slow_init)
"""

# argv[1]: a JSON file {"barrier": path, "runs": [{"argv": [...], "ready": path, "out": path,
# "err": path}, ...]}; argv[2]: where the exit codes go (a JSON list, as Popen.returncode: -N
# for a racer killed by signal N). Modules a push, a pull or a listing imports are imported
# before the fork (a module missing here is only imported later, by the racer itself).
ZYGOTE = (
    SLOW_HOOKS
    + r"""
import importlib, json
from lfsreg.cli import main
for _name in ("lfsreg.api", "lfsreg.ops.push", "lfsreg.ops.pull", "lfsreg.git.remote", "lfsreg.git.filepush",
              "lfsreg.lfs.store", "lfsreg.lfs.http", "lfsreg.lfs.batch", "lfsreg.transports.oci_layout",
              "lfsreg.transports.docker_archive", "requests", "urllib3"):
    try:
        importlib.import_module(_name)
    except ImportError:
        pass
spec = json.load(open(sys.argv[1]))
barrier = spec["barrier"]
sys.stdout.flush()
sys.stderr.flush()
pids = []
for run in spec["runs"]:
    pid = os.fork()
    if pid == 0:  # the racer: its own stdout and stderr files, ready, barrier, the command
        for fd, path in ((1, run["out"]), (2, run["err"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        open(run["ready"], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(barrier):
            if time.monotonic() > deadline:
                sys.exit("barrier never opened")
            time.sleep(0.001)
        main(run["argv"])  # exits (click's standalone mode): the interpreter ends as any process's does
        sys.exit(0)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
with open(sys.argv[2], "w") as f:
    json.dump(codes, f)
"""
)


def run_concurrently(
    workdir: Path, argvs: list[list[str]], *, slow_git_init: float = 0.0, env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``lfsreg ARGV`` for every argv in its own process (environment ``env``), all released at the same moment.

    Fails the test when a racer printed a ``Traceback`` or ``Exception ignored``. The racers run
    without coverage (tools/test.sh), whatever ``env`` says.
    """
    # Unmeasured by coverage: the racers run the commands every other test runs in-process
    # (measured there), and each point where they collide is also forced, measured, in
    # test_forced_races and test_shared_mirror_locks. Traced, the racers cost ~6 s more CPU
    # per run of their four test files (Python 3.11 runs every line ~3x slower under it).
    env = {**without_coverage(env), "SLOW_GIT_INIT": str(slow_git_init)}
    workdir.mkdir(parents=True, exist_ok=True)
    barrier = workdir / "go"
    runs = [
        {"argv": argv, "ready": str(workdir / f"ready-{i}"), "out": str(workdir / f"out-{i}"), "err": str(workdir / f"err-{i}")}
        for i, argv in enumerate(argvs)
    ]
    spec, codes_file = workdir / "racers.json", workdir / "codes.json"
    spec.write_text(json.dumps({"barrier": str(barrier), "runs": runs}))
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(spec), str(codes_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the racers go with it if the test fails
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(Path(run["ready"]).exists() for run in runs):
            assert zygote.poll() is None, f"the racers died before the barrier: {zygote.communicate()}"
            assert time.monotonic() < deadline, "racers did not start"
            time.sleep(0.005)
        barrier.touch()
        out, err = zygote.communicate(timeout=RUN_TIMEOUT)
        assert zygote.returncode == 0, f"the racers' parent failed (exit {zygote.returncode})\n{out}\n{err}"
        codes = json.loads(codes_file.read_text())
        results = []
        for run, code in zip(runs, codes, strict=True):
            stdout, stderr = Path(run["out"]).read_text(), Path(run["err"]).read_text()
            crash = crash_in(subprocess.CompletedProcess(run["argv"], code, stdout, stderr))
            assert crash is None, f"lfsreg {' '.join(run['argv'])} printed {crash!r} (exit {code})\n{stdout}\n{stderr}"
            results.append(subprocess.CompletedProcess(run["argv"], code, stdout, stderr))
        return results
    finally:
        if zygote.poll() is None or zygote.returncode != 0:  # the racers too, wherever they are
            with contextlib.suppress(ProcessLookupError):
                os.killpg(zygote.pid, signal.SIGKILL)
            zygote.wait()
