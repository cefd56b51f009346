"""Deleting a local registry's LFS objects that nothing references any more.

An object is deleted only when it is not in ``keep`` and its file was last changed before
``cutoff``: a push that finds an object already stored refreshes its time
(:meth:`lfsreg.lfs.store.LocalLfsStore.missing`), so an object a running push is about to
reference is recent and stays. The file is first renamed aside and its time read again there:
a push that refreshed it in between gets it put back; one that comes after finds it missing
and uploads it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass

from ..git.collect import remove_empty_dirs

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Swept:
    """LFS objects deleted (or, in a dry run, that would be) and their bytes; what stays."""

    deleted: int
    bytes_deleted: int
    kept: int
    bytes_kept: int


def sweep_objects(root: str, keep: Collection[str], cutoff: float, *, dry_run: bool = False) -> Swept:
    """Delete the objects under ``root/objects`` (git-lfs's layout) not in ``keep`` and older than ``cutoff``."""
    deleted = bytes_deleted = kept = bytes_kept = 0
    aside_dir = os.path.join(root, "tmp")
    os.makedirs(aside_dir, exist_ok=True)
    for dirpath, _, files in os.walk(os.path.join(root, "objects")):
        for oid in files:
            path = os.path.join(dirpath, oid)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if oid in keep or st.st_mtime >= cutoff:
                kept += 1
                bytes_kept += st.st_size
                continue
            if dry_run:
                deleted += 1
                bytes_deleted += st.st_size
                continue
            aside = os.path.join(aside_dir, f"gc-{os.getpid()}-{oid}")
            try:
                os.rename(path, aside)
                if os.stat(aside).st_mtime >= cutoff:  # refreshed by a push just now: it stays
                    os.rename(aside, path)
                    kept += 1
                    bytes_kept += st.st_size
                    continue
                os.unlink(aside)
            except OSError as exc:
                log.warning("%s: could not delete: %s", path, exc)
                with contextlib.suppress(OSError):
                    if os.path.exists(aside) and not os.path.exists(path):
                        os.rename(aside, path)
                continue
            deleted += 1
            bytes_deleted += st.st_size
    if not dry_run:
        remove_empty_dirs(os.path.join(root, "objects"), depth=2)  # a push that loses one creates it again
    return Swept(deleted, bytes_deleted, kept, bytes_kept)
