"""Which tags a commit holds, what they need, and the same tree without everything else.

Used by ``prune`` (what untagging frees) and ``gc`` (each kept commit's tree rewritten to hold
only what its own tags need). Every step is cached by git tree id, so a long history whose
commits share most of their trees costs about one read of each distinct tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..digest import Digest
from ..errors import NotARegistryError
from ..git.history import DIR_MODE, Trees
from . import layout
from .closure import Closure, Needs

#: The directories whose files exist only because a tag needs them.
CONTENT_DIRS = layout.KINDS


class Liveness:
    """Reads tags and their needs from trees of one repository (``label`` names it in errors)."""

    def __init__(self, trees: Trees, label: str) -> None:
        self.trees = trees
        self.label = label
        self._closures: dict[layout.Layout, Closure] = {}
        self._layouts: dict[bytes, layout.Layout] = {}
        self._tag_dirs: dict[bytes, dict[str, bytes]] = {}
        self._names: dict[tuple[bytes, str], dict[tuple[str, str], bytes]] = {}
        self._rebuilt: dict[tuple[bytes, frozenset[str]], bytes | None] = {}

    # -- tags --------------------------------------------------------------------------------
    def tag_files(self, tree: bytes) -> dict[tuple[str, str], bytes]:
        """``(name, tag) -> blob id`` of every tag file in the root tree ``tree``."""
        sub = self.trees.subtree(tree, layout.REPOSITORIES)
        return {} if sub is None else self._named(tree, self._under(sub, ""))

    def _named(self, tree: bytes, found: dict[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
        """``found`` keyed by ``(path below repositories/, tag)`` re-keyed by image name (``tree``'s layout: version 4's fan-out).

        A directory that its layout does not give a name (in another name's fan-out) holds no tags of the registry.
        """
        lay = self.layout(tree)
        if not lay.name_levels:
            return found
        out = {}
        for (below, tag), value in found.items():
            name = lay.name_of(below)
            if name is not None:
                out[(name, tag)] = value
        return out

    def _under(self, sha: bytes, prefix: str) -> dict[tuple[str, str], bytes]:
        key = (sha, prefix)
        found = self._names.get(key)
        if found is not None:
            return found
        out: dict[tuple[str, str], bytes] = {}
        for entry, mode, child in self.trees.entries(sha, f"{layout.REPOSITORIES}/{prefix}"):
            if mode != DIR_MODE:
                continue
            if entry == layout.TAGS_DIR:
                out.update({(prefix, tag): blob for tag, m, blob in self.trees.entries(child, prefix) if m != DIR_MODE})
            else:
                out.update(self._under(child, f"{prefix}/{entry}" if prefix else entry))
        self._names[key] = out
        return out

    def changed(self, new: bytes | None, old: bytes | None) -> set[tuple[str, str]]:
        """The tags whose files differ between two root trees (only differing subtrees are read)."""
        a = self.trees.subtree(new, layout.REPOSITORIES) if new is not None else None
        b = self.trees.subtree(old, layout.REPOSITORIES) if old is not None else None
        found = self._diff(a, b, "")
        either = new if new is not None else old
        return set(self._named(either, dict.fromkeys(found))) if either is not None else found

    def _diff(self, a: bytes | None, b: bytes | None, prefix: str) -> set[tuple[str, str]]:
        if a == b:
            return set()
        if a is None or b is None:
            present = a if a is not None else b
            return set(self._under(present, prefix)) if present is not None else set()
        out: set[tuple[str, str]] = set()
        left = {n: (m, s) for n, m, s in self.trees.entries(a, prefix)}
        right = {n: (m, s) for n, m, s in self.trees.entries(b, prefix)}
        for entry in set(left) | set(right):
            x, y = left.get(entry), right.get(entry)
            xs = x[1] if x and x[0] == DIR_MODE else None
            ys = y[1] if y and y[0] == DIR_MODE else None
            if xs == ys:
                continue
            if entry == layout.TAGS_DIR:
                fa = {t: s for t, m, s in self.trees.entries(xs, prefix) if m != DIR_MODE} if xs else {}
                fb = {t: s for t, m, s in self.trees.entries(ys, prefix) if m != DIR_MODE} if ys else {}
                out |= {(prefix, t) for t in set(fa) | set(fb) if fa.get(t) != fb.get(t)}
            else:
                out |= self._diff(xs, ys, f"{prefix}/{entry}" if prefix else entry)
        return out

    def tags(self, tree: bytes) -> dict[tuple[str, str], Digest]:
        """``(name, tag) -> digest`` of every tag in ``tree``; :class:`NotARegistryError` for a damaged tag file."""
        out = {}
        for (name, tag), blob in self.tag_files(tree).items():
            digest = layout.parse_tag(self.trees.blob(blob, self.layout(tree).tag_path(name, tag)))
            if digest is None:
                raise NotARegistryError(f"{self.label}: tag file for {name}:{tag} is corrupt", hint="fix or remove it first")
            out[(name, tag)] = digest
        return out

    # -- needs -------------------------------------------------------------------------------
    def layout(self, tree: bytes) -> layout.Layout:
        """The layout of the root tree ``tree``, as its format marker names it."""
        found = self._layouts.get(tree)
        if found is None:
            found = self._layouts[tree] = layout.of_marker(self.trees.read(tree, layout.MARKER))
        return found

    def needs(self, tree: bytes, digests: Iterable[Digest]) -> Needs:
        """What the images ``digests`` need, read from ``tree`` (records of needed layers included)."""
        total = Needs()

        def read(path: str) -> bytes | None:
            return self.trees.read(tree, path)

        lay = self.layout(tree)
        closure = self._closures.get(lay)
        if closure is None:
            closure = self._closures[lay] = Closure(self.label, lay)
        for digest in sorted(set(digests)):
            total.add(closure.of(digest, read))
        for path, data in closure.records(total, read).items():
            total.files[path] = len(data)
        return total

    # -- rewriting ---------------------------------------------------------------------------
    def trimmed(self, tree: bytes, keep: set[str]) -> bytes:
        """The id of ``tree`` with only the ``keep`` paths left under :data:`CONTENT_DIRS` (written as needed)."""
        shape: _Node = {}
        for path in keep:
            node = shape
            *dirs, name = path.split("/")
            for d in dirs:
                node = node.setdefault(d, {})
            node.setdefault(FILES, set()).add(name)
        entries = []
        for name, mode, sha in self.trees.entries(tree, "/"):
            if name in CONTENT_DIRS and mode == DIR_MODE:
                new = self._filtered(sha, name, shape.get(name))
                if new is not None:
                    entries.append((name, mode, new))
            else:
                entries.append((name, mode, sha))
        return self.trees.write_tree(entries)

    def _filtered(self, sha: bytes, path: str, node: _Node | None) -> bytes | None:
        """``sha`` (the directory ``path``) with only the files ``node`` names kept; ``None`` when nothing is left."""
        if not node:
            return None
        names = frozenset(node.get(FILES, ()))
        leaf = len(node) == (1 if FILES in node else 0)
        if leaf and (sha, names) in self._rebuilt:
            return self._rebuilt[(sha, names)]
        old = self.trees.entries(sha, path)
        entries = []
        for name, mode, child in old:
            if mode == DIR_MODE:
                new = self._filtered(child, f"{path}/{name}", node.get(name))
                if new is not None:
                    entries.append((name, mode, new))
            elif name in names:
                entries.append((name, mode, child))
        if not entries:
            result = None
        elif len(entries) == len(old) and all(a[2] == b[2] for a, b in zip(entries, old, strict=True)):
            result = sha  # nothing dropped: the tree as it was
        else:
            result = self.trees.write_tree(entries)
        if leaf:
            self._rebuilt[(sha, names)] = result
        return result


FILES = ""  # the key of a directory's kept file names in a shape (no path component is empty)
_Node = dict[str, Any]  # subdirectory name -> _Node; FILES -> set of file names
