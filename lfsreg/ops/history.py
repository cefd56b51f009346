"""``history`` and ``rollback``: what a tag has named, and one commit that points it back.

The history is read from the registry branch's commits (first parents, newest first),
comparing only the tag directory of the image in each commit with its parent's: unchanged
directories are one tree id compared, so a long history costs about one tree read per commit.
A rollback re-adds, from the commit where the tag last named the target, every file the target
needs that the tree no longer holds (after ``prune`` + ``gc``), checks that its layers are still
stored, and publishes the tag change with the registry's compare-and-swap transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..digest import Digest
from ..errors import BlobNotFound, ConcurrentUpdateError, ImageNotFound, NotFoundError, UsageError
from ..git.history import CommitInfo, Trees, Walk
from ..git.store import GitStore
from ..reference import ImageRef, parse_tagged, validate_name, validate_tag
from ..registry import layout
from ..registry.closure import Closure
from ..registry.location import Backend
from ..registry.transaction import Publisher
from ..registry.view import RegistryView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TagChange:
    """One change of a tag: what it names after ``commit`` (``None``: removed) and before it."""

    name: str
    tag: str
    digest: Digest | None
    previous: Digest | None
    commit: str
    time: int  # the commit's time, seconds since the epoch (UTC)
    message: str

    @property
    def action(self) -> str:
        """``created``, ``moved`` or ``removed``."""
        if self.digest is None:
            return "removed"
        return "created" if self.previous is None else "moved"


@dataclass(frozen=True, slots=True)
class TagHistory:
    """Every change of the tags asked for, newest first; ``truncated``: the history available ended early."""

    changes: list[TagChange]
    truncated: bool


def _tag_files(trees: Trees, tree: bytes | None, directory: str) -> dict[str, bytes]:
    if tree is None:
        return {}
    sub = trees.subtree(tree, directory)
    if sub is None:
        return {}
    return {name: sha for name, mode, sha in trees.entries(sub, directory) if mode != 0o040000}


def _digest(trees: Trees, sha: bytes | None, what: str) -> Digest | None:
    return None if sha is None else layout.parse_tag(trees.blob(sha, what))


def history_tip(backend: Backend, label: str) -> str | None:
    """The registry's tip with its whole history at hand; :class:`NotARegistryError` if it is not a registry."""
    tip = backend.history_tip()
    RegistryView(backend.git.snapshot(tip), label)  # refuses a repository without the format marker
    return tip


def image_history(backend: Backend, label: str, image: str) -> TagHistory:
    """:func:`tag_history` of ``NAME:TAG`` or of every tag of ``NAME``.

    Raises :class:`ImageNotFound` when no such tag was ever set, :class:`NotFoundError` for an
    empty registry, :class:`UsageError` for a reference by digest.
    """
    ref = ImageRef.parse(image, default_tag="")
    if ref.tag is None:
        raise UsageError("history takes NAME or NAME:TAG, not a digest")
    tip = history_tip(backend, label)
    if tip is None:
        raise NotFoundError(f"{label}: the registry is empty")
    found = tag_history(backend.git, tip, ref.name, ref.tag or None)
    if not found.changes and not found.truncated:
        raise ImageNotFound(f"{label}: {ref.name}{':' + ref.tag if ref.tag else ''} was never tagged here")
    return found


def tag_history(git: GitStore, tip: str | None, name: str, tag: str | None = None) -> TagHistory:
    """The changes of ``name``'s tags (only ``tag``'s, if given) from ``tip`` back to the first commit."""
    validate_name(name)
    if tag is not None:
        validate_tag(tag)
    trees, walk = Trees(git), Walk(git)
    commits = list(walk.commits(tip))
    out: list[TagChange] = []
    for i, commit in enumerate(commits):
        parent: CommitInfo | None = commits[i + 1] if i + 1 < len(commits) else None
        # the registry's layout (its marker names it from the first commit; only 1 -> 2 changes it, not its paths)
        directory = layout.of_marker(trees.read(commit.tree, layout.MARKER)).tags_dir(name)
        now = trees.subtree(commit.tree, directory)
        before = trees.subtree(parent.tree, directory) if parent is not None else None
        if now == before:
            continue
        after_files = _tag_files(trees, commit.tree, directory)
        before_files = _tag_files(trees, parent.tree if parent is not None else None, directory)
        for t in sorted(set(after_files) | set(before_files)):
            if (tag is not None and t != tag) or after_files.get(t) == before_files.get(t):
                continue
            what = f"{directory}/{t}"
            new, old = _digest(trees, after_files.get(t), what), _digest(trees, before_files.get(t), what)
            if new == old:
                continue
            out.append(TagChange(name, t, new, old, commit.id, commit.time, commit.message.strip()))
    return TagHistory(out, walk.truncated)


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """A rollback: the tag, what it named before and after, and the commit (``None``: nothing to change)."""

    name: str
    tag: str
    previous: Digest | None
    digest: Digest
    commit: str | None
    restored: int  # files re-added from history


def _target(history: TagHistory, current: Digest | None, to: Digest | None, steps: int | None, ref: str) -> Digest:
    """The digest a rollback goes to: ``to``, or the one ``steps`` changes before the current one."""
    named: list[Digest] = []
    for change in history.changes:
        if change.digest is not None and (not named or named[-1] != change.digest):
            named.append(change.digest)
    if to is not None:
        if to not in named:
            more = " in the history available" if history.truncated else ""
            raise ImageNotFound(f"{ref} never named {to}{more}", hint=f"see what it named with: lfsreg history REPO {ref}")
        return to
    steps = 1 if steps is None else steps
    if steps < 1:
        raise UsageError(f"--steps must be 1 or more, not {steps}")
    index = steps if named and named[0] == current else steps - 1
    if index >= len(named):
        earlier = len(named) - (1 if named and named[0] == current else 0)
        raise ImageNotFound(f"{ref} named {earlier} earlier digest(s); cannot go back {steps}", hint=f"lfsreg history REPO {ref}")
    return named[index]


def rollback(backend: Backend, publisher: Publisher, image: str, *, to: str | None, steps: int | None) -> RollbackResult:
    """Point ``NAME:TAG`` back at the digest ``to`` (or at what it named ``steps`` changes ago) in one commit.

    The files the target needs are taken from the newest commit where the tag named it. Raises
    :class:`ImageNotFound` (no such tag history or target), :class:`BlobNotFound` (its layers are
    no longer stored: nothing is written), :class:`ConcurrentUpdateError` (the tag moved meanwhile).
    """
    if to is not None and steps is not None:
        raise UsageError("give --to DIGEST or --steps N, not both")
    name, tag = parse_tagged(image)
    target_digest = Digest.parse(to) if to is not None else None
    ref = f"{name}:{tag}"
    git, lfs = backend.git, backend.lfs
    tip = history_tip(backend, publisher.label)
    history = tag_history(git, tip, name, tag)
    if not history.changes:
        raise ImageNotFound(f"{publisher.label}: {ref} has no history", hint=f"tags of {name}: lfsreg tags {publisher.label} {name}")
    trees = Trees(git)
    tip_tree = Walk(git).commit(tip).tree if tip else None
    path = layout.of_marker(trees.read(tip_tree, layout.MARKER) if tip_tree else None).tag_path(name, tag)
    current_data = trees.read(tip_tree, path) if tip_tree else None
    current = layout.parse_tag(current_data) if current_data is not None else None
    target = _target(history, current, target_digest, steps, ref)
    if target == current:
        return RollbackResult(name, tag, current, target, None, 0)
    source = next(c for c in history.changes if c.digest == target)
    source_tree = Walk(git).commit(source.commit).tree

    def read(p: str) -> bytes | None:
        return trees.read(source_tree, p)

    closure = Closure(publisher.label, layout.of_marker(read(layout.MARKER)))  # the registry's: a marker names it from its first commit
    needs = closure.of(target, read)
    contents: dict[str, bytes | None] = {}
    for p in needs.paths():
        data = read(p)
        if data is None:
            raise BlobNotFound(f"{publisher.label}: {p}, needed by {target}, is missing from commit {source.commit[:12]}")
        contents[p] = data
    contents.update(closure.records(needs, read))
    lacking = lfs.missing(list(needs.layers.values()))
    if lacking:
        raise BlobNotFound(
            f"{publisher.label}: cannot roll {ref} back to {target}: {len(lacking)} of its layer(s) are no longer stored "
            f"(e.g. sha256:{lacking[0].oid[:12]})",
            hint="gc removed them once no tag needed them; push that image again instead",
        )
    restored: list[int] = []

    def build(view: RegistryView) -> dict[str, bytes | None]:
        data = view.snapshot.read(path)
        now = layout.parse_tag(data) if data is not None else None
        if now != current:
            raise ConcurrentUpdateError(
                f"{publisher.label}: {ref} moved to {now} while rolling back; nothing was changed",
                hint="look at `lfsreg history` and run the rollback again",
            )
        restored[:] = [sum(1 for p in contents if not view.snapshot.exists(p))]
        return {**contents, path: layout.tag_content(target)}

    commit = publisher.publish(build, f"rollback {ref} to {target}")
    log.debug("rolled %s back to %s in %s", ref, target, commit)
    return RollbackResult(name, tag, current, target, commit, restored[0] if restored else 0)
