"""Run the lfsreg CLI and fill a file system at a chosen moment: ``python fill_at.py DIR HOOK -- ARGS``.

The disk-full tests need ``ENOSPC`` at one stage of a command (the ref update, say), after
the earlier stages wrote what they needed. ``HOOK`` is ``module:Class.method`` (or
``module:function``): the first time it is called, the file system holding ``DIR`` is filled
to the last byte by a file ``DIR/filler`` (a real full disk: the kernel answers the next
write with ``ENOSPC``), and then the original runs. ``HOOK`` ``-`` fills before the command
starts. Nothing of lfsreg is replaced: only the timing of the filling is chosen.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys


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


def _arm(directory: str, hook: str) -> None:
    module_name, _, attr = hook.partition(":")
    owner: object = importlib.import_module(module_name)
    *parents, name = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    done = False

    @functools.wraps(original)
    def filled_first(*args: object, **kwargs: object) -> object:
        nonlocal done
        if not done:
            done = True
            fill(directory)
        return original(*args, **kwargs)

    setattr(owner, name, filled_first)


def main() -> None:
    directory, hook, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: fill_at.py DIR HOOK -- ARGS"
    if hook == "-":
        fill(directory)
    else:
        _arm(directory, hook)
    sys.argv = ["lfsreg", *args]
    from lfsreg.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
