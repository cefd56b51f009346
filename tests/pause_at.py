"""Run the lfsreg CLI and pause it at a chosen moment: ``python pause_at.py HOOK READY GO -- ARGS``.

For tests that need two processes to overlap at one exact point (a barrier, not a sleep).
``HOOK`` is ``module:Class.method`` (or ``module:function``): the first time it returns, this
process creates the file ``READY`` and waits until the file ``GO`` exists (60 s at most),
then carries on. Nothing of lfsreg is replaced: only the timing is chosen.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time

WAIT = 60.0


def _arm(hook: str, ready: str, go: str) -> None:
    module_name, _, attr = hook.partition(":")
    owner: object = importlib.import_module(module_name)
    *parents, name = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    done = False

    @functools.wraps(original)
    def paused_after(*args: object, **kwargs: object) -> object:
        nonlocal done
        result = original(*args, **kwargs)
        if not done:
            done = True
            with open(ready, "w"):
                pass
            deadline = time.monotonic() + WAIT
            while not os.path.exists(go):
                if time.monotonic() > deadline:
                    raise SystemExit(f"pause_at: {go} did not appear within {WAIT:.0f} s")
                time.sleep(0.01)
        return result

    setattr(owner, name, paused_after)


def main() -> None:
    hook, ready, go, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: pause_at.py HOOK READY GO -- ARGS"
    _arm(hook, ready, go)
    sys.argv = ["lfsreg", *args]
    from lfsreg.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
