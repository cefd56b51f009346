"""Sections of the main thread that a SIGTERM must not cut in half.

The CLI turns SIGTERM into an exception raised wherever the main thread happens to be
(:mod:`lfsreg.cli`), so that locks are released and staged files removed on the way out. Raised
inside the constructor of an object that has a ``__del__``, it leaves half an object whose
``__del__`` then fails: dulwich's object store, cut before it had set its pack cache, printed
"Exception ignored in: ... PackBasedObjectStore.__del__ ... AttributeError". Such constructors
run inside :func:`deferred`: a signal handler that finds itself in one hands its exception to
:func:`defer`, and it is raised when the section ends, with the object whole.

Only the main thread counts: Python runs signal handlers there, so a section of another
thread cannot be cut by one (and must not delay the main thread's).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["defer", "deferred"]

_depth = 0  # sections the main thread is inside
_pending: BaseException | None = None  # what a handler deferred, raised as the outermost section ends


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section of the main thread in which a deferring signal handler's exception waits for its end."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            exc, _pending = _pending, None
            raise exc


def defer(exc: BaseException) -> bool:
    """From a signal handler: keep ``exc`` for the end of the current section; ``False`` outside one."""
    global _pending
    if _depth == 0:
        return False
    _pending = exc
    return True
