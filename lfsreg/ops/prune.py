"""``prune``: untag by policy in one commit, and say what that frees once collected.

A tag's age is the time of the commit that last set it (read from the history, newest first,
stopping once every live tag is dated). Per image name, the tags the filters select
(``--image``/``--tag`` globs, minus ``--protect``) are ordered newest first; a tag is pruned
when it is beyond the ``keep_last`` newest **and** older than ``older_than`` (each condition
applies only when given). What it frees is the bytes only pruned tags hold: layers and
metadata files that no remaining tag needs. A signature tag (``NAME:sha256-<hex>.sig``) is
not an image of its own: it is never selected, counted or aged, and goes with the last tag
of the manifest it signs.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..digest import Digest
from ..errors import UsageError
from ..git.history import Trees, Walk
from ..git.store import GitStore
from ..registry import layout
from ..registry.location import Backend
from ..registry.retention import Liveness
from ..registry.transaction import Publisher, subject_refs
from ..registry.view import RegistryView
from ..signing.cosign import signed_digest
from .history import history_tip

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrunePolicy:
    """Which tags to untag (see the module docstring); ``older_than`` in seconds."""

    keep_last: int | None = None
    older_than: float | None = None
    images: Sequence[str] = ()
    tags: Sequence[str] = ()
    protect: Sequence[str] = ()

    def check(self) -> None:
        """:class:`UsageError` for a policy that selects by nothing (it would untag everything)."""
        if self.keep_last is not None and self.keep_last < 0:
            raise UsageError(f"--keep-last must be 0 or more, not {self.keep_last}")
        if self.older_than is not None and self.older_than < 0:
            raise UsageError("--older-than must not be negative")
        if self.keep_last is None and self.older_than is None and not self.images and not self.tags:
            raise UsageError("prune needs a policy: --keep-last N, --older-than AGE, --image GLOB or --tag GLOB")

    def selects(self, name: str, tag: str) -> bool:
        """Whether the filters select ``name:tag`` (and ``--protect`` does not shield it)."""
        if self.images and not any(fnmatch.fnmatchcase(name, g) for g in self.images):
            return False
        if self.tags and not any(fnmatch.fnmatchcase(tag, g) for g in self.tags):
            return False
        return not any(fnmatch.fnmatchcase(tag, g) or fnmatch.fnmatchcase(f"{name}:{tag}", g) for g in self.protect)


@dataclass(frozen=True, slots=True)
class PrunedTag:
    """A tag the policy untags, the digest it named, and when it was set (epoch s)."""

    name: str
    tag: str
    digest: Digest
    time: int


@dataclass
class PruneResult:
    """What a prune did (or would do, ``dry_run``): the tags, the bytes freed once collected, the commit."""

    pruned: list[PrunedTag] = field(default_factory=list)
    kept: int = 0
    layers_freed: int = 0
    bytes_freed: int = 0  # LFS bytes only the pruned tags hold
    metadata_bytes_freed: int = 0  # manifests, configs, records only they hold (git)
    commit: str | None = None
    dry_run: bool = False


def tag_times(git: GitStore, tip: str, live: Sequence[tuple[str, str]], liveness: Liveness) -> dict[tuple[str, str], int]:
    """When each of the ``live`` tags (all in ``tip``) was last set: the newest commit that changed it.

    A history cut short (a shallow mirror) dates what it could not reach at its oldest commit:
    the tag is at least that old, and taking the later time prunes less, never more.
    """
    pending = set(live)
    out: dict[tuple[str, str], int] = {}
    commits = Walk(git).commits(tip)
    current = next(commits, None)
    while current is not None and pending:
        parent = next(commits, None)
        changed = liveness.changed(current.tree, parent.tree if parent is not None else None)
        for key in changed & pending:
            out[key] = current.time
        pending -= changed
        if parent is None:
            for key in pending:
                out[key] = current.time
            pending.clear()
        current = parent
    return out


def _signatures_of(
    liveness: Liveness, root: bytes, tags: dict[tuple[str, str], Digest], doomed: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The signature tags (``NAME:sha256-<hex>.sig``, docs/format.md) of what pruning ``doomed`` leaves unnamed.

    A signature tag is never counted or aged as an image tag of its own: it goes when the
    manifest it signs is needed by a pruned tag of its name and by no tag that stays.
    """
    if not doomed:
        return []
    images = {k: d for k, d in tags.items() if signed_digest(k[1]) is None}
    gone = liveness.needs(root, [images[k] for k in doomed]).files
    stays = liveness.needs(root, [d for k, d in images.items() if k not in set(doomed)]).files
    names = {n for n, _ in doomed}
    out = []
    for name, tag in tags:
        signed = signed_digest(tag)
        if signed is not None and name in names and (path := liveness.layout(root).blob_path(signed)) in gone and path not in stays:
            out.append((name, tag))
    return out


def prune_tags(
    backend: Backend, publisher: Publisher, policy: PrunePolicy, *, dry_run: bool = False, now: float | None = None
) -> PruneResult:
    """Untag what ``policy`` selects in one commit (none with ``dry_run``); see the module docstring.

    Raises :class:`UsageError` for a policy that selects by nothing, before anything is read.
    """
    policy.check()
    git = backend.git
    tip = history_tip(backend, publisher.label)
    result = PruneResult(dry_run=dry_run)
    if tip is None:
        return result
    now = time.time() if now is None else now
    trees = Trees(git)
    liveness = Liveness(trees, publisher.label)
    root = Walk(git).commit(tip).tree
    tags = liveness.tags(root)
    times = tag_times(git, tip, list(tags), liveness)
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in tags:
        if signed_digest(key[1]) is None and policy.selects(*key):  # signature tags follow their images (below)
            by_name.setdefault(key[0], []).append(key)
    doomed: list[tuple[str, str]] = []
    for keys in by_name.values():
        keys.sort(key=lambda k: (times[k], k[1]), reverse=True)
        for rank, key in enumerate(keys):
            if policy.keep_last is not None and rank < policy.keep_last:
                continue
            if policy.older_than is not None and times[key] > now - policy.older_than:
                continue
            doomed.append(key)
    doomed += _signatures_of(liveness, root, tags, doomed)
    doomed.sort()
    result.pruned = [PrunedTag(n, t, tags[(n, t)], times[(n, t)]) for n, t in doomed]
    result.kept = len(tags) - len(doomed)
    gone = liveness.needs(root, [tags[k] for k in doomed])
    stays = liveness.needs(root, [d for k, d in tags.items() if k not in set(doomed)])
    freed_layers = {p: o for p, o in gone.layers.items() if p not in stays.layers}
    result.layers_freed = len({o.oid for o in freed_layers.values()})
    result.bytes_freed = sum({o.oid: o.size for o in freed_layers.values()}.values())
    result.metadata_bytes_freed = sum(size for p, size in gone.files.items() if p not in stays.files)
    if dry_run or not doomed:
        return result
    named = {liveness.layout(root).tag_path(n, t): layout.tag_content(tags[(n, t)]) for n, t in doomed}

    def build(view: RegistryView) -> dict[str, bytes | None]:
        # a tag pushed again since it was read is no longer the one the policy chose: it stays
        return {path: None for path, content in named.items() if view.snapshot.read(path) == content}

    listed = subject_refs([f"{n}:{t}" for n, t in doomed])
    body = "\n".join(f"{n}:{t} {tags[(n, t)]}" for n, t in doomed)
    result.commit = publisher.publish(build, f"prune {len(doomed)} tag(s): {listed}\n\n{body}\n")
    log.debug("pruned %d tag(s) in %s", len(doomed), result.commit)
    return result
