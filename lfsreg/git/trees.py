"""Trees parsed in one pass: what dulwich's ``Tree`` gives, for the trees git writes, in a third of the time.

dulwich builds an object, a dictionary and a sorted list of entry tuples per tree: about 55 ms
for the 30,000 names of one registry namespace (``repositories/scale`` of a format version 1
to 3 registry), read by every ``tags REPO NAME`` and pull under it, and by every whole
listing. A tree git wrote is already in git's order with no name twice, so one parse
(dulwich's C ``parse_tree``) and one check of the order give the same entries; anything else
(out of order, a repeated name, damage) is left to dulwich.
"""

from __future__ import annotations

import zlib
from hashlib import sha1

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import parse_tree

from .levels import DIR_MODE
from .objects import ObjectFiles

_TREE = 2

__all__ = ["git_order", "quick_tree"]


def git_order(entries: list[tuple[bytes, int, bytes]]) -> dict[bytes, tuple[int, bytes]] | None:
    """``{name: (mode, id)}`` of a tree's parsed entries, if they are in git's order without a repeated name, else ``None``.

    What dulwich's ``Tree`` gives for such a tree (every tree git writes), without building its
    object, its dictionary and its sorted list: a third of the time on a 30,000-entry tree. For
    ``None``, ask dulwich (it sorts, and keeps the last of a repeated name).
    """
    keys = [name + b"/" if mode & 0o170000 == DIR_MODE else name for name, mode, _ in entries]  # git sorts a tree as NAME/
    if keys != sorted(keys):  # on keys in order, one linear pass
        return None
    found = {name: (mode, sha) for name, mode, sha in entries}
    return found if len(found) == len(entries) else None


def quick_tree(objects: ObjectFiles, sha: bytes) -> dict[bytes, tuple[int, bytes]] | None:
    """Tree ``sha`` read, checked against its id and parsed in one pass (:func:`git_order`); ``None``: anything unusual.

    The caller then reads it the dulwich way, which names a missing or damaged object.
    """
    try:
        kind, raw = objects.get_raw(sha)
        if kind != _TREE or sha1(b"tree %d\0" % len(raw) + raw).hexdigest().encode() != sha:
            return None
        return git_order(list(parse_tree(raw, 20)))
    except (KeyError, ValueError, TypeError, AssertionError, OverflowError, zlib.error, ChecksumMismatch, ObjectFormatException):
        return None
