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

from dulwich.file import FileLocked, _GitFile
from dulwich.objects import ZERO_SHA
from dulwich.refs import Ref
from dulwich.repo import Repo

from ..staging import writing

ANY = object()  # ``old`` for an unconditional write


def abandon_git_files(exc: BaseException) -> None:
    """Close and remove the locks of dulwich ``GitFile`` writes that ``exc`` interrupted.

    dulwich flushes a ``GitFile`` in ``close()``; when the disk is full that flush fails, the
    ``.lock`` stays, and the object's destructor tries again later, failing once more (and
    printing "Exception ignored in _GitFile.__del__"). Every such file still referenced by a
    frame of ``exc``'s traceback is closed here (the unflushed bytes dropped) and its lock
    removed, as is a pack dulwich was receiving, so the error can be reported in one line and
    nothing is left behind.
    """
    tb = exc.__traceback__
    while tb is not None:
        names = tb.tb_frame.f_locals
        for value in list(names.values()):
            if isinstance(value, _GitFile) and not value._closed:
                with contextlib.suppress(OSError, ValueError):
                    value._file.close()  # closes the file even when its flush fails
                with contextlib.suppress(OSError, ValueError):
                    value.abort()
        _remove_temporary_pack(names)
        tb = tb.tb_next


def _remove_temporary_pack(names: dict[str, object]) -> None:
    """Remove the pack dulwich was receiving into ``objects/pack/tmp*.pack`` (this process's own).

    dulwich's ``add_pack`` (locals ``f`` and ``path``) removes it on abort only, not when
    finishing it fails (a full disk while it is checked and indexed).
    """
    path = names.get("path")
    if not isinstance(path, (str, bytes)):
        return
    path = os.fsdecode(path)
    if not (os.path.basename(path).startswith("tmp") and path.endswith(".pack") and os.path.basename(os.path.dirname(path)) == "pack"):
        return
    handle = names.get("f")
    if handle is not None and hasattr(handle, "close"):
        with contextlib.suppress(OSError, ValueError):
            handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


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
