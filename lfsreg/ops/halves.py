"""Running a pure, read-only piece of a walk on two cores: half of it in a forked child.

``verify`` on a registry of 30,000 images spends most of its time reading and checking
objects that do not depend on one another. :func:`in_halves` gives the second half of such a
list to a child process (``fork``: it shares the parent's maps of the packs and its loaded
indexes, nothing is set up again) and does the first half itself; the child sends its answers
back pickled through a pipe. Where forking is not safe or not worth it (no ``fork``, no free
core, other threads running, a short list) everything runs here, and so it does whenever the
child fails: the answers are the same either way, only the time differs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Items below which a fork costs more than it saves (a fork and a pipe: about a millisecond).
MIN_ITEMS = 2000


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """True where a child can take half the work: ``fork`` exists, no other thread to copy mid-way, and a core is free.

    Never when the environment has ``LFSREG_FORK=0``.

    Free: the load average of the last minute below the cores this process may use (as
    ``make -l``; a command run again and again counts about one itself). On a busy machine a
    second process only adds the fork's and the pipe's cost to the same CPU time.
    """
    # LFSREG_FORK=0: a program embedding lfsreg that must not fork (it holds locks or
    # connections a child would copy, or counts its processes) turns the split off.
    if os.environ.get("LFSREG_FORK", "1") == "0" or not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return load < _cores()


def in_halves(work: Callable[[list[T]], R], items: list[T]) -> list[R]:
    """The answers of ``work`` for the two halves of ``items`` (the second half's from a child when :func:`can_fork`).

    ``work`` must only read, and return something :mod:`pickle` can carry. One answer, for
    all of ``items``, when the work is not split.
    """
    if len(items) < MIN_ITEMS or not can_fork():
        return [work(items)]
    half = len(items) // 2
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, write, leave without running anything of the parent's
        status = 1
        try:
            os.close(read_end)
            data = pickle.dumps(work(items[half:]), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as f:
                f.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    done = False
    try:
        first = work(items[:half])
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        done = True
    finally:
        if not done:  # interrupted, or the parent's half failed: the child goes too
            with contextlib.suppress(OSError):
                os.close(read_end)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    second = None
    if status == 0 and data:
        with contextlib.suppress(Exception):  # what the child sent does not load (an error that does not pickle back)
            second = pickle.loads(data)
    return [first, second if second is not None else work(items[half:])]


__all__ = ["MIN_ITEMS", "can_fork", "in_halves"]
