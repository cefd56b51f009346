"""git's ``.lock`` files: whether one is held by a live process, and the error that says which.

git (and dulwich) take a lock by creating ``<file>.lock`` with ``O_EXCL`` and release it by
renaming it over ``<file>``. A process killed in between leaves the ``.lock`` behind, and
every later writer of that file fails. Such a lock is *stale* when it is old (locks are held
for milliseconds) and no process has it open. Whether a lock in a user's repository is
removed is the user's call (git says the same); the error names the file and the command.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ConcurrentUpdateError, LocalStorageError
from ..staging import writing

log = logging.getLogger(__name__)
GUARD = "lfsreg-ref-update"  # in the repository's git directory; see ref_update()
#: A lock this old (seconds) that no process holds open was left by a process that is gone.
STALE_AFTER = 5.0
#: How long a writer waits for a lock held by a live process before giving up.
LOCK_WAIT = 10.0
_MARK_SIZE = 512  # bytes of the guard's mark (a pid and a path; longer paths are cut)


@dataclass(frozen=True)
class LockState:
    """What is known about one lock file.

    Attributes:
        path: the ``.lock`` file.
        age: seconds since it was last written.
        holders: ids of processes that have it open (empty: none; ``None``: unknown, no ``/proc``).
    """

    path: str
    age: float
    holders: tuple[int, ...] | None

    @property
    def stale(self) -> bool:
        """Old and held by no process: its owner died before releasing it."""
        return self.age >= STALE_AFTER and not self.holders


def _holders(path: str) -> tuple[int, ...] | None:
    """Processes of this machine (that we may inspect) with ``path`` open; ``None`` without ``/proc``."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    target = os.path.realpath(path)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return tuple(found)


def inspect(path: str) -> LockState | None:
    """The state of the lock file ``path``, or ``None`` if there is none (any more)."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return LockState(path, max(0.0, time.time() - mtime), _holders(path))


def remove_if_stale(path: str, *, unheld: bool = False) -> bool:
    """Remove ``path`` if it is a stale lock (in a store lfsreg owns, or one nothing will rename).

    ``unheld``: it is stale as soon as no process holds it open, whatever its age (the lock of
    an object that exists now: its writer, if alive, would still have it open).
    """
    state = inspect(path)
    if state is None or not (state.stale or (unheld and state.holders == ())):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def stale_lock_error(state: LockState, repo: str) -> LocalStorageError:
    """The error for a stale lock in the repository ``repo``: which file, and how to recover."""
    return LocalStorageError(
        f"{state.path}: a lock left {state.age:.0f} s ago by a git or lfsreg process that is gone",
        hint=f"if no git or lfsreg command is writing to {repo}, remove it: rm '{state.path}'",
    )


def busy_lock_error(state: LockState, repo: str) -> ConcurrentUpdateError:
    """The error for a lock that a live process kept longer than :data:`LOCK_WAIT`."""
    who = f" by process {', '.join(map(str, state.holders))}" if state.holders else ""
    return ConcurrentUpdateError(
        f"{state.path}: held{who} for more than {LOCK_WAIT:.0f} s",
        hint=f"another command is writing to {repo}; run this one again when it is done",
    )


def wait_error(path: str, repo: str) -> LocalStorageError | ConcurrentUpdateError | None:
    """The error to raise for the lock ``path`` once waiting is over (``None``: it is gone now)."""
    state = inspect(path)
    if state is None:
        return None
    return stale_lock_error(state, repo) if state.stale else busy_lock_error(state, repo)


def flock_within(fd: int, wait: float) -> bool:
    """Take an exclusive advisory lock on ``fd``, waiting up to ``wait`` s; ``False`` if another process kept it.

    The kernel releases the lock when ``fd`` is closed or its process dies.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


@contextlib.contextmanager
def ref_update(git_dir: str, lock: str) -> Iterator[None]:
    """Mark, for other lfsreg processes, that this one is updating a ref whose lock is ``lock``.

    The mark is ``<git_dir>/lfsreg-ref-update``: this process's id written into it under an
    advisory lock (which the kernel releases when the process dies), and erased when the update
    is over. Whoever finds the mark still written but unlocked knows that an lfsreg process was
    killed in the middle of its update, so the branch lock it may have left (held open by no
    one) is garbage and is removed. The mark stays too when the update ends in an exception.
    A lock without such a mark may be stock git's: it is only
    reported (:func:`stale_lock_error`), as git itself does.
    """
    guard = os.path.join(git_dir, GUARD)
    with writing(guard):
        fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not flock_within(fd, LOCK_WAIT):
            raise ConcurrentUpdateError(
                f"{os.path.join(git_dir, GUARD)}: another lfsreg process kept updating the branch for {LOCK_WAIT:.0f} s",
                hint="run the command again when it is done",
            )
        if os.pread(fd, _MARK_SIZE, 0).strip():
            state = inspect(lock)
            if state is not None and not state.holders:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                log.warning("%s: removed the lock left by an lfsreg process killed while updating the branch", lock)
        # The mark keeps its size, blank when erased: once the file has its block, marking and
        # erasing rewrite it in place, so a full disk cannot refuse them in the middle of an update.
        with writing(guard):
            os.pwrite(fd, f"{os.getpid()} {lock}\n".encode()[:_MARK_SIZE].ljust(_MARK_SIZE), 0)
        yield
        # Only after an update that ended normally: one interrupted by an exception (SIGTERM
        # unwinding through a rename, say) may have left its lock, like a killed one.
        os.pwrite(fd, b" " * _MARK_SIZE, 0)
    finally:
        os.close(fd)  # releases the advisory lock
