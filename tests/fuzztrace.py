"""Under coverage, a property-based test traces its test body only, not Hypothesis's engine (a pytest plugin).

Coverage (tools/test.sh) measures lfsreg through a trace function, and on Python 3.11 a trace
function makes every line of Python run ~3x slower, measured or not. In a ``@given`` test most
of the work is Hypothesis generating and shrinking examples (Python code that coverage does
not measure); lfsreg runs only inside the test function. So the trace function of the test's
thread is stopped for the test as a whole and started again around each call of the test
function (Hypothesis's documented ``inner_test`` hook). What lfsreg does in the test is
measured as before; Hypothesis's own work runs untraced. Measured on the four fuzz files
under coverage: see the commit that added this plugin.

Only coverage's C tracer (``start``/``stop``, which act on the current thread) is switched;
without coverage, or with another trace function (a debugger), nothing is changed. Stopping and
starting in the same frame keeps the tracer's frame stack in step: every call it sees while
started returns before it is stopped again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from untraced import c_tracer


def _traced(tracer: Any, test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        tracer.start()
        try:
            return test(*args, **kwargs)
        finally:
            tracer.stop()

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    hypothesis = getattr(getattr(item, "obj", None), "hypothesis", None)
    tracer = c_tracer()
    if hypothesis is None or tracer is None or not hasattr(hypothesis, "inner_test"):
        yield
        return
    inner = hypothesis.inner_test
    hypothesis.inner_test = _traced(tracer, inner)
    tracer.stop()
    try:
        yield
    finally:
        tracer.start()
        hypothesis.inner_test = inner
