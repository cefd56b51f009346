"""Reading a stream on a thread of its own, so that one layer's stages overlap on several cores.

A push or pull moves each layer through several stages: read, hash, (de)compress, hash again,
write. Done in one thread they add up; :class:`ReadAhead` runs the stages below it (whatever
``source`` does in its ``read``) on a producer thread while the caller runs the stages above
it, a few chunks behind. hashlib, zstandard and file I/O release the GIL on large buffers, so
both threads compute at once. Memory stays at ``depth`` chunks whatever the layer's size.

Nothing here weakens verification: every byte still passes through the same hashing readers,
in the same order; only the thread differs. An error below (a digest mismatch, a corrupt frame,
a short read) is raised, as itself, by the consumer's next read, and the producer has stopped by
then, so the consumer may touch the objects under ``source`` (``finish()`` them) only after it
saw the end or the error.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Protocol

from .digest import CHUNK

_END = b""
_POLL = 0.1  # seconds a blocked producer waits before it checks whether the consumer left


class Source(Protocol):
    """What :class:`ReadAhead` reads: ``read(n)``, and optionally ``finish()`` and ``what``."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


def _put(q: queue.Queue[tuple[bytes, BaseException | None]], stop: threading.Event, item: tuple[bytes, BaseException | None]) -> bool:
    """Put ``item``, waiting for room unless the consumer left (``stop``); False if it left."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _produce(source: Source, chunk: int, q: queue.Queue[tuple[bytes, BaseException | None]], stop: threading.Event) -> None:
    """The producer thread: ``source``'s chunks, then the end (``b""``) or the error it raised.

    It holds no reference to the :class:`ReadAhead`, so a consumer that drops the reader
    (an exception elsewhere) lets it be collected, which stops this thread.
    """
    try:
        while not stop.is_set():
            data = source.read(chunk)
            if not _put(q, stop, (data, None)) or not data:
                return
    except BaseException as exc:  # handed to the consumer, which raises it
        _put(q, stop, (_END, exc))


class ReadAhead:
    """Reads ``source`` on a producer thread, up to ``depth`` chunks of ``chunk`` bytes ahead.

    ``read(n)`` returns exactly ``n`` bytes unless the stream ends first, as a file does (tar
    writers need that); asked for ``chunk`` bytes at a time it hands over the producer's
    buffers without copying them. ``finish()`` reads to the end and then calls
    ``source.finish()`` if it has one (a :class:`lfsreg.integrity.VerifiedReader`: it verifies),
    so a ``ReadAhead`` stands in for the verifying reader it wraps; ``what`` is the source's.
    ``close()`` stops the producer early (also done when the reader is collected).
    """

    def __init__(self, source: Source, *, chunk: int = CHUNK, depth: int = 2, name: str = "lfsreg-readahead") -> None:
        self._source = source
        self.what: str = getattr(source, "what", "stream")
        self._queue: queue.Queue[tuple[bytes, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(source, chunk, self._queue, self._stop), name=name, daemon=True)
        self._head = b""  # the part of the current chunk not read yet
        self._ended = False
        self._thread.start()

    def _next(self) -> bytes:
        """The producer's next chunk (``b""`` at the end); raises what the producer raised."""
        if self._ended:
            return _END
        data, exc = self._queue.get()
        if exc is not None or not data:
            self._ended = True
            self._thread.join()  # it returns right after handing over the end or the error
            if exc is not None:
                raise exc
        return data

    def read(self, n: int = -1, /) -> bytes:
        """``n`` bytes (everything left for ``n < 0``), fewer only at the end."""
        if n is not None and 0 <= n <= len(self._head):
            data, self._head = self._head[:n], self._head[n:]
            return data
        if not self._head and n is not None and n >= 0:
            data = self._next()
            if len(data) == n:  # the common case: the consumer reads in the producer's chunks
                return data
            self._head = data
        parts = [self._head]
        got = len(self._head)
        self._head = b""
        while n is None or n < 0 or got < n:
            data = self._next()
            if not data:
                break
            parts.append(data)
            got += len(data)
        joined = b"".join(parts)
        if n is not None and 0 <= n < len(joined):
            joined, self._head = joined[:n], joined[n:]
        return joined

    def finish(self) -> None:
        """Read to the end (the producer has stopped after that), then ``finish()`` the source."""
        while self.read(CHUNK):
            pass
        finish = getattr(self._source, "finish", None)
        if finish is not None:
            finish()

    def close(self) -> None:
        """Stop the producer (it ends at its next chunk); the stream is unusable after this."""
        self._stop.set()
        self._ended = True
        with contextlib.suppress(queue.Empty):
            while True:  # room for a producer blocked on a full queue
                self._queue.get_nowait()

    def __del__(self) -> None:
        self._stop.set()


class Turn:
    """Holds ``lock`` (if any) from entering the block until :meth:`over` or the block's end.

    For work taking turns on the cores (one layer compressed at a time), whose tail need not
    wait: the next one starts when this one calls :meth:`over`. Idempotent.
    """

    def __init__(self, lock: threading.Lock | None) -> None:
        self._lock = lock
        self._held = False

    def __enter__(self) -> Turn:
        if self._lock is not None:
            self._lock.acquire()
            self._held = True
        return self

    def over(self) -> None:
        """Let the next one in (once)."""
        if self._held and self._lock is not None:
            self._held = False
            self._lock.release()

    def __exit__(self, *exc: object) -> None:
        self.over()
