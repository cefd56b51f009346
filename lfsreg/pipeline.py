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
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from .digest import CHUNK

T = TypeVar("T")

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
    ``close()`` stops the producer early (also done when the reader is collected). ``spread``
    says that the stages below already spread over the cores (a zstd decode pool), so that a
    writer does not run two such readers at once (:class:`lfsreg.transports.sinks.TarSink`).
    """

    def __init__(self, source: Source, *, chunk: int = CHUNK, depth: int = 2, name: str = "lfsreg-readahead", spread: bool = False) -> None:
        self._source = source
        self.what: str = getattr(source, "what", "stream")
        self.spread = spread
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


class Ordered(Generic[T]):
    """Work run on a thread pool, its results taken back in the order it was submitted.

    The pattern of both zstd pipelines (frames compressed on push, decoded on pull): the caller
    submits one piece of work after another and takes the results in order, never more than
    ``window`` pieces in flight, so memory stays at a few pieces whatever the stream's size.
    :meth:`close` (idempotent) cancels what has not started and lets the pool's threads end.
    """

    def __init__(self, threads: int, window: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix=name)
        self._window = max(1, window)
        self._pending: deque[Future[T]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, fn: Callable[..., T], *args: Any) -> Iterator[T]:
        """Submit ``fn(*args)``; return :meth:`ready` (consume it: it waits while the window is full)."""
        self._pending.append(self._pool.submit(fn, *args))
        return self.ready()

    def ready(self, keep: int | None = None) -> Iterator[T]:
        """The results in order: every finished one at the front, and the oldest, waited for, while more are in flight.

        More than ``keep`` (default: the window), that is. A piece's exception is raised here.
        """
        keep = self._window if keep is None else keep
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[T]:
        """Every result left, in order."""
        return self.ready(0)

    def close(self, *, wait: bool = False) -> None:
        """Drop what is not taken: queued pieces are cancelled, running ones end unread (waited for if ``wait``)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=wait, cancel_futures=True)


class _Abandoned(Exception):
    """The feeder left: ends the consumer's reads (never seen by a caller)."""


class _Chunks:
    """The consumer's side of :class:`Fed`: the chunks fed, read as a stream (``b""`` at their end)."""

    def __init__(self, q: queue.Queue[bytes], stop: threading.Event) -> None:
        self._queue = q
        self._stop = stop
        self._head = b""
        self._off = 0
        self.ended = False

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes of the current chunk (the whole chunk, not copied, when ``n`` covers it)."""
        if self._off >= len(self._head):
            if self.ended:
                return b""
            while True:
                if self._stop.is_set():
                    raise _Abandoned
                try:
                    self._head, self._off = self._queue.get(timeout=_POLL), 0
                    break
                except queue.Empty:
                    continue
            if not self._head:
                self.ended = True
                return b""
        if self._off == 0 and (n is None or n < 0 or n >= len(self._head)):
            data, self._head = self._head, b""
            return data
        end = len(self._head) if n is None or n < 0 else self._off + n
        data = self._head[self._off : end]
        self._off += len(data)
        return data


def _consume(consume: Callable[[Source], Any], chunks: _Chunks, outcome: list[tuple[Any, BaseException | None]]) -> None:
    """The thread of :class:`Fed`: ``consume`` the chunks, then take what is left (which is an error)."""
    try:
        result = consume(chunks)
        extra = 0
        while data := chunks.read(CHUNK):
            extra += len(data)
        if extra:
            raise ValueError(f"{extra} bytes after the end of the stream")
        outcome.append((result, None))
    except _Abandoned:
        outcome.append((None, None))
    except BaseException as exc:  # handed to the feeder, which raises it
        outcome.append((None, exc))


class Fed(Generic[T]):
    """Runs ``consume(reader)`` on a thread of its own over the chunks given to :meth:`feed`.

    For a stage that pulls (a decompressor reads its input) where the caller pushes (a tap on a
    stream read by someone else): ``reader.read()`` returns the fed chunks, then ``b""`` after
    :meth:`close`. At most ``depth`` chunks wait, so ``feed`` blocks while the thread is that far
    behind and memory stays bounded; the caller and the thread compute at once. The thread must
    read to the end: bytes it leaves unread are an error. ``consume``'s exception is raised, as
    itself, by the next :meth:`feed` or by :meth:`close`; :meth:`abandon` (also done when this
    object is collected) stops the thread at its next read.
    """

    def __init__(self, consume: Callable[[Source], T], *, depth: int = 4, name: str = "lfsreg-fed") -> None:
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._outcome: list[tuple[Any, BaseException | None]] = []
        self._thread = threading.Thread(
            target=_consume, args=(consume, _Chunks(self._queue, self._stop), self._outcome), name=name, daemon=True
        )
        self._thread.start()
        self._closed = False

    def _failed(self) -> None:
        """Raise the consumer's exception if it has ended with one."""
        if self._outcome and self._outcome[0][1] is not None:
            self._closed = True
            raise self._outcome[0][1]

    def _put(self, data: bytes) -> None:
        while True:
            try:
                self._queue.put(data, timeout=_POLL)
                return
            except queue.Full:
                if not self._thread.is_alive():  # it ended (with an error, or early) and will take nothing more
                    self._thread.join()
                    self._failed()
                    raise ValueError("the stream's reader ended before its input did") from None

    def feed(self, data: bytes) -> None:
        """Hand ``data`` to the thread; raise what it raised, if it failed already."""
        if self._closed:
            raise ValueError("fed after close")
        self._failed()
        if data:
            self._put(data)

    def close(self) -> T:
        """The end of the input: wait for the thread and return ``consume``'s result (or raise its exception)."""
        if not self._closed:
            self._closed = True
            if self._thread.is_alive():
                self._put(b"")
        self._thread.join()
        self._failed()
        return self._outcome[0][0]  # type: ignore[no-any-return]

    def abandon(self) -> None:
        """Stop the thread without waiting for it (its result is dropped)."""
        self._closed = True
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()
