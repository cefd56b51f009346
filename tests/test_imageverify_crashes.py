"""imageverify's CLI runner fails on a crash in the output, whatever the exit code."""

from __future__ import annotations

import pytest
from imageverify import CRASH_MARKS, crash_in, lfsreg

# Loaded by the interpreter of every CLI run (PYTHONPATH): an object whose __del__ raises at
# shutdown, as dulwich's _GitFile did on a full disk -- Python prints "Exception ignored in: ..."
# and still exits 0.
SITECUSTOMIZE = """
import builtins


class _FailsAtExit:
    def __del__(self):
        raise OSError(28, "No space left on device")


builtins._lfsreg_test_fails_at_exit = _FailsAtExit()
"""


def test_crash_marks():
    assert crash_in("lfsreg: error: x\n") is None
    assert crash_in("Traceback (most recent call last):\n  File ...") == CRASH_MARKS[0]
    assert crash_in("Exception ignored in: <function _GitFile.__del__ at 0x1>") == "Exception ignored"


@pytest.mark.parametrize("check", [True, False])
def test_exception_ignored_with_exit_0_fails_the_run(tmp_path, monkeypatch, check):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(AssertionError, match="printed 'Exception ignored' \\(exit 0\\)"):
        lfsreg("--version", check=check, spawn=True)
    monkeypatch.delenv("PYTHONPATH")
    assert lfsreg("--version", spawn=True).returncode == 0
