"""The tests' own servers run their threads without coverage's trace function.

Under coverage (tools/test.sh) every new thread gets the C tracer, and on Python 3.11 a trace
function makes every line of Python ~3x slower, measured or not. The fault LFS server, the cut
proxy and the canned HTTP server are test code (nothing of lfsreg runs in their threads: they
import none of it), so their threads drop the tracer as they start. lfsreg's own threads, and
``lfsreg serve`` started in a test, keep it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any


def untraced(target: Callable[..., Any]) -> Callable[..., Any]:
    """``target`` (a thread's) run with no trace function in its thread."""

    @functools.wraps(target)
    def run(*args: Any, **kwargs: Any) -> Any:
        sys.settrace(None)
        return target(*args, **kwargs)

    return run


class UntracedThreadingHTTPServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` whose request threads run untraced (serve it from an :func:`untraced` thread)."""

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        sys.settrace(None)
        super().process_request_thread(request, client_address)


def c_tracer() -> Any | None:
    """The current thread's coverage C tracer, or None."""
    tracer = sys.gettrace()
    if type(tracer).__name__ == "CTracer" and hasattr(tracer, "start") and hasattr(tracer, "stop"):
        return tracer
    return None
