"""tests/tracefix.py: a thread's trace install refused for a moment is retried; other errors are not hidden."""

from __future__ import annotations

import sys

import pytest
import tracefix

BUSY = "Cannot install a trace function while another trace function is being installed"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython 3.12+ has no such refusal (python/cpython#98257)")
def test_a_refused_install_is_retried_and_other_errors_pass_through(monkeypatch):
    calls: list[object] = []

    def refused_once(function: object) -> None:
        calls.append(function)
        if len(calls) == 1:
            raise RuntimeError(BUSY)
        if function == "other":
            raise RuntimeError("other")

    monkeypatch.setattr(sys, "settrace", refused_once)
    tracefix.install()
    sys.settrace(None)  # the wrapper: refused once, then installed
    assert calls == [None, None]
    with pytest.raises(RuntimeError, match=r"^other$"):
        sys.settrace("other")
    assert calls == [None, None, "other"]
