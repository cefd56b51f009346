"""Reading paths of a partial mirror in as few exchanges as their depth allows.

A mirror fetched in part (:mod:`lfsreg.git.partial`) learns the id of a tree only from its
parent, so reading ``a/b/c`` takes one exchange per directory level. Every path a command is
about to read goes through the levels together: at each depth, one exchange asks for every
object the paths need there (the trees on the way, and the objects the paths name), whatever
part of the registry they belong to. A path may ask for ``below`` levels under the tree it
names (git's ``tree:N`` filter): those come in the same level's exchange when no other path of
that level asks for a different depth (a filter applies to a whole request), else in one more.
Ids known up front (``ids``) ride with the first exchange.

Each exchange costs the server one ``git upload-pack`` process, and each tree it sends costs it
a read of the tree's direct subtrees (git parses them to apply the filter): both grow with the
number of exchanges, not with what a level asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

DIR_MODE = 0o040000
SAMPLE = 64  # ids looked up before a prefetch of many checks them all (each look-up costs tens of µs)

#: ``(path, below)``: read ``path``; if it is a directory, also ``below`` levels under it.
Wanted = tuple[str, int]


def lacking(has: Callable[[bytes], bool], ids: Iterable[bytes]) -> list[bytes]:
    """Those of ``ids`` that ``has`` says are absent; none when a sample of many is all there.

    A mirror that read these before lacks at most a few, fetched when read: checking tens of
    thousands of ids (a listing's levels) one by one costs more than that.
    """
    ids = list(ids)
    if len(ids) > SAMPLE * 4 and all(has(i) for i in ids[:: len(ids) // SAMPLE]):
        return []
    return [i for i in ids if not has(i)]


def prefetch_levels(
    directory: Callable[[str], Mapping[bytes, tuple[int, bytes]] | None],
    has: Callable[[bytes], bool],
    fetch: Callable[[list[bytes], int], Any],
    wanted: Iterable[Wanted],
    ids: Iterable[bytes] = (),
) -> None:
    """Fetch what reading ``wanted`` needs, a depth of the paths an exchange (see the module docstring).

    ``directory(path)`` gives the entries of a directory already in reach (``None``: there is
    none), ``has(id)`` whether the mirror holds an object; ``fetch(ids, below)`` makes one
    exchange for ``ids``.
    """
    split = [(parts, below) for path, below in wanted if (parts := path.strip("/").split("/")) != [""]]
    first = lacking(has, dict.fromkeys(ids))
    for depth in range(1, max((len(parts) for parts, _ in split), default=0) + 1):
        deepest: dict[bytes, int] = {}  # a tree two paths ask for: with the most levels either asks (once, not twice)
        files: dict[bytes, None] = {}
        for parts, below in split:
            if len(parts) < depth:
                continue
            above = directory("/".join(parts[: depth - 1]))
            entry = above.get(parts[depth - 1].encode()) if above is not None else None
            if entry is None:
                continue
            if entry[0] != DIR_MODE:
                if depth == len(parts):
                    files[entry[1]] = None
                continue
            levels = below if depth == len(parts) else 0
            deepest[entry[1]] = max(levels, deepest.get(entry[1], 0))
        groups: dict[int, dict[bytes, None]] = {0: {}}
        for sha, levels in deepest.items():
            groups.setdefault(levels, {})[sha] = None
        asks = {below: found for below, level in groups.items() if (found := lacking(has, level))}
        extra = [*lacking(has, files), *first]  # files come whatever the filter; ids known up front ride along
        if not asks and not extra:
            continue  # all there (the tip's fetch brings the first levels): the ids wait for a level that asks
        first = []
        asks.setdefault(0 if 0 in asks or not asks else next(iter(asks)), []).extend(extra)
        for below, level in asks.items():
            fetch(level, below)
    if first:
        fetch(first, 0)
