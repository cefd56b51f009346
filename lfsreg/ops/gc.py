"""``gc``: rewrite the registry branch to reference only what tags need, then free what the location allows.

The first-parent history is cut at ``keep_history`` before now. Commits newer than the cut are
kept, each with its tree trimmed to what its own tags need (so ``history`` and ``rollback`` keep
working there); everything from the newest commit older than the cut back to the first is
squashed into one commit holding that commit's trimmed tree. A commit that would not change
keeps its id. The branch moves by compare-and-swap; when a push landed meanwhile, the rewrite
runs again on the new tip (commits already rewritten are reused), so the push is kept.

Then, for a local registry: LFS objects no commit of any ref references, and git objects no ref
reaches, are deleted once older than ``grace`` before gc started (:mod:`lfsreg.lfs.collect`,
:mod:`lfsreg.git.collect`). A remote host keeps the old objects until it collects them itself:
the result says how (``docs/retention.md``).
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field

from ..errors import ConcurrentUpdateError, UsageError
from ..formats import lfs_pointer
from ..git.bulk import directory_bytes
from ..git.collect import collect, reachable_commits, ref_tips
from ..git.history import DIR_MODE, CommitInfo, Trees, Walk
from ..lfs.collect import sweep_objects
from ..lfs.store import LocalLfsStore
from ..registry.location import Backend, LocalBackend
from ..registry.retention import Liveness
from .history import history_tip

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20
REMOTE_HINT = (
    "the host keeps what the old history referenced until it collects it: on GitLab, Settings > Repository > "
    "Repository cleanup with the commit map (gc --commit-map FILE) removes it; on GitHub only deleting the "
    "repository gives LFS storage back, so `lfsreg copy` the registry to a new one first (docs/retention.md)"
)


@dataclass
class GcResult:
    """What gc did (or would do, ``dry_run``); byte counts of LFS objects unless named git."""

    commits_before: int = 0
    commits_after: int = 0
    squashed: int = 0  # commits folded into the first one
    referenced_bytes: int = 0  # what the history referenced before (what a host bills)
    live_bytes: int = 0  # what the kept commits reference
    live_layers: int = 0
    commit: str | None = None  # the new tip (None: nothing rewritten)
    attempts: int = 0
    local: bool = False
    lfs_deleted: int = 0
    lfs_bytes_freed: int = 0
    git_bytes_before: int = 0
    git_bytes_after: int = 0
    disk_before: int = 0
    disk_after: int = 0
    dry_run: bool = False
    remote_hint: str | None = None
    commit_map: list[tuple[str, str]] = field(default_factory=list)  # (old, new) of every rewritten commit


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _squashed(commits: list[CommitInfo], kept: list[CommitInfo], base: CommitInfo | None) -> int:
    """How many commits the base replaces (0 when it is the first commit, replacing none but itself)."""
    return len(commits) - len(kept) if base is not None and base.parent is not None else 0


class _Rewriter:
    """Rewrites first-parent chains; remembers what it wrote, so a retry only rewrites new commits."""

    def __init__(self, trees: Trees, liveness: Liveness) -> None:
        self.trees = trees
        self.liveness = liveness
        self._memo: dict[tuple[str, str | None, str | None], str] = {}
        self.live: dict[str, int] = {}  # oid -> size of layers the last rewrite's commits reference
        self.mapping: list[tuple[str, str]] = []  # (old, new) of the last rewrite, squashed commits to the base

    def chain(self, commits: list[CommitInfo], cut: float) -> tuple[list[CommitInfo], CommitInfo | None]:
        """``(kept newest first, squash base or None)`` of ``commits`` (newest first)."""
        kept: list[CommitInfo] = []
        for c in commits:
            if c.time < cut:
                return kept, c
            kept.append(c)
        return kept, None

    def rewrite(self, commits: list[CommitInfo], cut: float) -> tuple[str, int]:
        """The id of the rewritten tip of ``commits``, and how many commits the base squashes."""
        kept, base = self.chain(commits, cut)
        self.mapping = []
        squashed = _squashed(commits, kept, base)
        chain = ([base] if base is not None else []) + kept[::-1]
        parent: str | None = None
        self.live = {}
        for c in chain:
            message = None
            if c is base and base.parent is not None:
                message = f"lfsreg gc: {squashed} commit(s) up to {_iso(base.time)} squashed into one\n\nlast message:\n{base.message}"
            key = (c.id, parent, message)
            needs = self.liveness.needs(c.tree, self.liveness.tags(c.tree).values())
            for obj in needs.layers.values():
                self.live[obj.oid] = obj.size
            new = self._memo.get(key)
            if new is None:
                tree = self.liveness.trimmed(c.tree, set(needs.files) | set(needs.layers))
                same = tree == c.tree and parent == c.parent and message is None
                new = c.id if same else self.trees.write_commit(tree, parent, c, message)
                self._memo[key] = new
            if c is base:
                self.mapping += [(old.id, new) for old in commits[len(kept) :]]
            else:
                self.mapping.append((c.id, new))
            parent = new
        assert parent is not None
        return parent, squashed


def referenced_layers(trees: Trees, tips: list[str]) -> dict[str, int]:
    """``oid -> size`` of every layer pointer in every commit reachable from ``tips``."""
    out: dict[str, int] = {}
    seen: set[bytes] = set()
    for _, root in reachable_commits(trees.store, tips):
        stack = [trees.subtree(root, "layers")]
        while stack:
            sha = stack.pop()
            if sha is None or sha in seen:
                continue
            seen.add(sha)
            for _, mode, child in trees.entries(sha, "layers"):
                if mode == DIR_MODE:
                    stack.append(child)
                elif child not in seen:
                    seen.add(child)
                    obj = lfs_pointer.decode(trees.blob(child, "a layer pointer"))
                    if obj is not None:
                        out[obj.oid] = obj.size
    return out


def collect_garbage(backend: Backend, label: str, *, keep_history: float = 0.0, grace: float = 3600.0, dry_run: bool = False) -> GcResult:
    """Rewrite the registry branch and free space (see the module docstring)."""
    started = time.time()
    cut = started - keep_history
    git = backend.git
    trees = Trees(git)
    rewriter = _Rewriter(trees, Liveness(trees, label))
    result = GcResult(local=isinstance(backend, LocalBackend), dry_run=dry_run)
    if keep_history < 0 or grace < 0:
        raise UsageError("keep_history and grace must not be negative")
    if result.local:
        result.disk_before = directory_bytes(git.path)
    tip = history_tip(backend, label)
    while tip is not None:
        result.attempts += 1
        commits = list(Walk(git).commits(tip))
        result.commits_before = len(commits)
        result.referenced_bytes = sum(referenced_layers(trees, [tip]).values())
        if dry_run:
            kept, base = rewriter.chain(commits, cut)
            result.commits_after = len(kept) + (1 if base is not None else 0)
            result.squashed = _squashed(commits, kept, base)
            for c in kept + ([base] if base is not None else []):
                needs = rewriter.liveness.needs(c.tree, rewriter.liveness.tags(c.tree).values())
                rewriter.live.update({o.oid: o.size for o in needs.layers.values()})
            break
        new, result.squashed = rewriter.rewrite(commits, cut)
        kept, base = rewriter.chain(commits, cut)
        result.commits_after = len(kept) + (1 if base is not None else 0)
        if new == tip or backend.swap(tip, new):
            result.commit = new if new != tip else None
            result.commit_map = [(old, n) for old, n in rewriter.mapping if old != n]
            break
        if result.attempts >= MAX_ATTEMPTS:
            raise ConcurrentUpdateError(f"{label}: the registry kept changing; gc gave up after {MAX_ATTEMPTS} attempts")
        log.debug("%s moved under gc; rewriting again on the new tip", label)
        tip = backend.history_tip()
    result.live_bytes = sum(rewriter.live.values())
    result.live_layers = len(rewriter.live)
    if not result.local:
        result.remote_hint = REMOTE_HINT
        return result
    assert isinstance(backend.lfs, LocalLfsStore)
    cutoff = started - grace
    # every layer any commit of any ref references now (a push that landed after the swap included)
    keep = referenced_layers(trees, ref_tips(git)) if not dry_run else rewriter.live
    swept = sweep_objects(backend.lfs.root, set(keep), cutoff, dry_run=dry_run)
    result.lfs_deleted, result.lfs_bytes_freed = swept.deleted, swept.bytes_deleted
    collected = collect(git, cutoff, dry_run=dry_run)
    result.git_bytes_before, result.git_bytes_after = collected.bytes_before, collected.bytes_after
    result.disk_after = directory_bytes(git.path) if not dry_run else result.disk_before - swept.bytes_deleted
    return result
