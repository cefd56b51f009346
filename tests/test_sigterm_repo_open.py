"""A SIGTERM that lands while a registry's git repository is being opened ends the command cleanly.

The CLI turns SIGTERM into an exception raised wherever the main thread is (lfsreg.cli). Raised
inside dulwich's object store constructor, before the store had set its pack cache, it left
half an object whose ``__del__`` failed: "Exception ignored in: <function
PackBasedObjectStore.__del__ ...> AttributeError: ... '_pack_cache'" (seen once in a full run
of test_kill_push, where a kill's timing happened to land there). Here the signal is sent from
inside that constructor, every time: the repository is opened whole, then the command ends
with ``lfsreg: terminated`` and 143, nothing else.
"""

from __future__ import annotations

import os
import signal

from clirun import run_cli
from dulwich.object_store import BaseObjectStore

from lfsreg import cli


def test_sigterm_inside_the_object_store_constructor_is_raised_after_it(registry, monkeypatch) -> None:
    built = BaseObjectStore.__init__
    sent = []

    def init_then_sigterm(self, *args, **kwargs) -> None:
        built(self, *args, **kwargs)
        if not sent:  # the first store only: the one the command opens
            # lfsreg's handler, or this would end the test's own process
            assert signal.getsignal(signal.SIGTERM) is cli._on_sigterm
            sent.append(os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode: still inside the constructor

    monkeypatch.setattr(BaseObjectStore, "__init__", init_then_sigterm)
    proc = run_cli("images", registry, traceback_ok=True)
    assert sent, "no object store was built"
    # the store was built whole (no "Exception ignored" from its __del__), then the command ended
    assert (proc.returncode, proc.stderr.strip(), proc.stdout) == (143, "lfsreg: terminated", "")
