"""Run the lfsreg CLI and act at a chosen moment of it.

``python cli_at.py fill DIR HOOK -- ARGS``: the first time ``HOOK`` is called, the file system
holding ``DIR`` is filled to the last byte by a file ``DIR/filler`` (a real full disk: the
kernel answers the next write with ``ENOSPC``), then the original runs; ``HOOK`` ``-`` fills
before the command starts. For the disk-full tests: ``ENOSPC`` at one stage of a command (the
ref update, say), after the earlier stages wrote what they needed.

``python cli_at.py pause HOOK READY GO -- ARGS``: the first time ``HOOK`` returns, the process
creates the file ``READY`` and waits until the file ``GO`` exists (60 s at most), then carries
on. For tests that need two processes to overlap at one exact point (a barrier, not a sleep).

``HOOK`` is ``module:Class.method`` (or ``module:function``). Nothing of lfsreg is replaced:
only the timing of the action is chosen.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys
import time
from collections.abc import Callable

WAIT = 60.0
USAGE = "usage: cli_at.py fill DIR HOOK -- ARGS | cli_at.py pause HOOK READY GO -- ARGS"


def fill(directory: str) -> None:
    """Fill the file system holding ``directory`` completely (``directory/filler``)."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize
        if free:
            with_blocks = os.fstat(fd).st_size + free
            try:
                os.posix_fallocate(fd, 0, with_blocks)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        block = b"\0" * 4096
        while True:  # whatever fallocate left (rounding), byte by byte at the end
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


def pause(ready: str, go: str) -> None:
    """Create ``ready``, then wait for ``go`` (:data:`WAIT` seconds at most)."""
    with open(ready, "w"):
        pass
    deadline = time.monotonic() + WAIT
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit(f"cli_at: {go} did not appear within {WAIT:.0f} s")
        time.sleep(0.01)


def _arm(hook: str, *, before: Callable[[], None] | None = None, after: Callable[[], None] | None = None) -> None:
    """Wrap ``hook`` so that its first call runs ``before`` first, or ``after`` once it returned."""
    module_name, _, attr = hook.partition(":")
    owner: object = importlib.import_module(module_name)
    *parents, name = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    done = False

    @functools.wraps(original)
    def acting(*args: object, **kwargs: object) -> object:
        nonlocal done
        first, done = not done, True
        if first and before is not None:
            before()
        result = original(*args, **kwargs)
        if first and after is not None:
            after()
        return result

    setattr(owner, name, acting)


def main() -> None:
    action, *rest = sys.argv[1:]
    sep = rest.index("--") if "--" in rest else -1
    params, args = rest[:sep], rest[sep + 1 :]
    if action == "fill" and sep == 2:
        directory, hook = params
        if hook == "-":
            fill(directory)
        else:
            _arm(hook, before=functools.partial(fill, directory))
    elif action == "pause" and sep == 3:
        hook, ready, go = params
        _arm(hook, after=functools.partial(pause, ready, go))
    else:
        raise SystemExit(USAGE)
    sys.argv = ["lfsreg", *args]
    from lfsreg.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
