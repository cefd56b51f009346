"""Loose ref files written under git's lock protocol, with nothing left behind when a write fails.

git moves a ref by creating ``<ref>.lock`` exclusively, writing the new value into it and
renaming it over ``<ref>``; stock git and dulwich honour the same lock. dulwich's writer
leaves its ``.lock`` behind when the disk is full (the failed flush is repeated in its
destructor, which fails again, so the lock is never removed and every later update waits on
it, as on a live writer's). This one writes the value with one unbuffered ``write``, and on
any failure removes the lock it created before raising :class:`LocalStorageError` naming the
ref.
"""

from __future__ import annotations

import contextlib
import errno
import os

from dulwich.file import FileLocked
from dulwich.objects import ZERO_SHA
from dulwich.refs import Ref
from dulwich.repo import Repo

from ..staging import writing

ANY = object()  # ``old`` for an unconditional write


def _rename(lock: str, path: str) -> None:
    """Move the written lock over the ref (the moment the ref changes; tests slow it down here)."""
    os.replace(lock, path)


def _current(repo: Repo, ref: bytes) -> bytes | None:
    """The ref's value, read under its lock (loose file first, then ``packed-refs``)."""
    value = repo.refs.read_loose_ref(Ref(ref))
    if value is None:
        value = repo.refs.get_packed_refs().get(Ref(ref))
    return None if value in (None, ZERO_SHA) else bytes(value)


def swap_ref(repo: Repo, ref: bytes, old: bytes | object | None, new: bytes) -> bool:
    """Set ``ref`` to ``new`` if it is ``old`` now (``None``: absent; :data:`ANY`: whatever it is).

    Returns ``False`` when the ref holds something else. Raises dulwich's ``FileLocked`` when
    another writer holds the lock, :class:`LocalStorageError` when the disk refuses the write
    (the lock this call created is gone again either way).
    """
    path = os.path.join(repo.controldir(), *ref.decode().split("/"))
    lock = path + ".lock"
    with writing(lock):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise FileLocked(path, lock) from None
        ours = True  # the lock is this call's until the rename hands it over
        try:
            try:
                if old is not ANY and _current(repo, ref) != old:
                    return False
                data = new + b"\n"
                if os.write(fd, data) != len(data):  # 41 bytes in one write: short only on a full disk
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), lock)
                os.fsync(fd)
            finally:
                os.close(fd)
            _rename(lock, path)
            ours = False
            return True
        finally:
            if ours:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
