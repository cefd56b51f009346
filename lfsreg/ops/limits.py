"""What a push will cost before it spends anything, and the limits it must stay within.

A push learns from the LFS batch API (or the local store) which of its layer objects the host
lacks: those bytes are what it adds to the host's storage. The registry's billed total is the
LFS bytes any commit references (:mod:`lfsreg.ops.walk`); after the push it grows by the new
objects no commit referenced before. Against ``limits.storage`` (:mod:`lfsreg.registry.config`)
a push that would go over is refused before a byte is uploaded, and one that would pass 80 %
is warned about. For a remote, history is read as far as the mirror holds it (a first push
reads only the tip): the totals are then lower bounds, and ``complete`` says so.

``limits.transfer`` (a host's monthly download allowance, GitHub's 10 GiB) is enforced per
command: a pull, or a deep ``verify`` of a remote, that would download more than the limit by
itself is refused before it downloads (:class:`TransferBudget`, :func:`check_transfer`); one
that would use more than 80 % of it is warned about. Objects already in the local cache cost
nothing. Only the host knows the month's total (``lfsreg usage`` shows its meter where it has
one); the check cannot see what other machines downloaded.

Host plans (``PRESETS``): numbers as published on 2026-11-30; sources in docs/limits.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import LimitExceededError, UsageError
from ..formats.lfs_pointer import LfsObject
from ..lfs.store import CachedLfsStore, LfsStore
from ..progress import ProgressCallback, no_progress
from ..registry.config import CONFIG, KEYS, LIMIT_KEYS, Limits, encode, flatten, format_size, parse_size, read_config, updated
from ..registry.transaction import Publisher
from ..registry.view import RegistryView

log = logging.getLogger(__name__)
WARN_AT = 0.8
GIB = 1024**3

#: Host plans: name -> (limits, description). Sources and dates: docs/limits.md.
PRESETS: dict[str, tuple[Limits, str]] = {
    "github-free": (
        Limits(10 * GIB, 2 * 1000**3, 10 * GIB),
        "GitHub Free / Pro: 10 GiB LFS storage, 10 GiB/month downloads, 2 GB per object",
    ),
    "github-pro": (Limits(10 * GIB, 2 * 1000**3, 10 * GIB), "GitHub Pro: as Free"),
    "github-team": (Limits(250 * GIB, 4 * 1000**3, 250 * GIB), "GitHub Team: 250 GiB storage, 250 GiB/month downloads, 4 GB per object"),
    "github-enterprise": (
        Limits(250 * GIB, 5 * 1000**3, 250 * GIB),
        "GitHub Enterprise Cloud: 250 GiB storage, 250 GiB/month downloads, 5 GB per object",
    ),
    "gitlab-free": (Limits(10 * GIB, None, None), "GitLab.com Free: 10 GiB per project, repository and LFS together"),
    "bitbucket-free": (Limits(1000**3, None, None), "Bitbucket Cloud Free: 1 GB of LFS"),
    "bitbucket-standard": (Limits(5 * 1000**3, None, None), "Bitbucket Cloud Standard: 5 GB of LFS"),
    "bitbucket-premium": (Limits(10 * 1000**3, None, None), "Bitbucket Cloud Premium: 10 GB of LFS"),
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a push will add, known before it uploads.

    Attributes:
        objects: LFS objects the host lacks (the push uploads them).
        bytes: their bytes: what the push adds to the host's LFS storage.
        billed_before: LFS bytes the registry's history references now (what the host bills).
        billed_after: the same once the push landed.
        complete: ``False`` when only part of the history was read (the totals are then at least these).
        storage_limit: ``limits.storage`` of the registry, if set.
        warning: a sentence when the push takes the registry past 80 % of ``storage_limit``.
    """

    objects: int
    bytes: int
    billed_before: int
    billed_after: int
    complete: bool = True
    storage_limit: int | None = None
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (also the ``detail`` of the ``estimate`` progress event)."""
        return asdict(self)


def estimate(missing: dict[str, int], layers: dict[str, int], billed: dict[str, int], complete: bool, limits: Limits) -> Estimate:
    """The :class:`Estimate` of a push.

    ``missing``: the push's LFS objects the host lacks (oid -> size); ``layers``: every LFS
    object the push references; ``billed``: every LFS object history references now.
    """
    before = sum(billed.values())
    after = before + sum(size for oid, size in layers.items() if oid not in billed)
    warning = None
    if limits.storage and after > WARN_AT * limits.storage and after <= limits.storage:
        warning = (
            f"after this push the registry's history references {format_size(after)} of LFS objects, "
            f"{100 * after / limits.storage:.0f} % of limits.storage ({format_size(limits.storage)})"
        )
    return Estimate(len(missing), sum(missing.values()), before, after, complete, limits.storage, warning)


def check_storage(est: Estimate, label: str, *, outcome: str = "nothing was uploaded") -> None:
    """:class:`LimitExceededError` if the push would take the registry over ``limits.storage``.

    A push that adds no LFS object history lacks (new tags of stored images) costs nothing and passes.
    """
    if est.storage_limit is None or est.billed_after <= est.storage_limit or est.billed_after == est.billed_before:
        if est.warning:
            log.info("%s: %s", label, est.warning)
        return
    over = est.billed_after - est.storage_limit
    raise LimitExceededError(
        f"{label}: this push would take the registry to {format_size(est.billed_after)} of LFS objects, "
        f"{format_size(over)} over limits.storage ({format_size(est.storage_limit)}); {outcome}",
        hint=f"free space first: lfsreg prune {label} --keep-last N, then lfsreg gc {label} "
        f"(see lfsreg du {label}); or raise the limit: lfsreg config {label} limits.storage SIZE",
    )


def check_transfer(nbytes: int, limit: int | None, label: str, what: str, *, spent: int = 0) -> None:
    """Refuse (:class:`LimitExceededError`) ``what`` downloading ``nbytes`` more from the host than ``limit`` allows.

    ``spent``: bytes the same command downloaded already. Past 80 % of the limit a warning is
    logged. Nothing is checked without a limit, or when nothing is to be downloaded.
    """
    total = spent + nbytes
    if limit is None or nbytes == 0:
        return
    if total > limit:
        raise LimitExceededError(
            f"{label}: {what} would download {format_size(total)} from the host, {format_size(total - limit)} over "
            f"limits.transfer ({format_size(limit)} a month); nothing more was downloaded",
            hint=f"download fewer images at a time, or raise the limit: lfsreg config {label} limits.transfer SIZE "
            f"(or --unset limits.transfer)",
        )
    if total > WARN_AT * limit:
        log.warning(
            "%s: %s downloads %s from the host, %.0f %% of limits.transfer (%s a month)",
            label,
            what,
            format_size(total),
            100 * total / limit,
            format_size(limit),
        )


class TransferBudget:
    """An LFS store whose downloads from the host, over one command, stay within ``limits.transfer``.

    Every other method is the wrapped store's. A fetch counts only the objects not validly in
    the local cache (what would really come over the network) and is refused, before anything
    of it is downloaded, once the command's downloads would pass the limit.
    """

    def __init__(self, lfs: CachedLfsStore, limit: int, label: str, what: str) -> None:
        self._lfs = lfs
        self._limit = limit
        self._label = label
        self._what = what
        self.spent = 0
        self._counted: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lfs, name)

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """As the store's ``fetch``, after checking the bytes it would download against the limit."""
        pending = {o.oid: o.size for o in objects if o.oid not in self._counted and not self._lfs.cache.valid(o)}
        check_transfer(sum(pending.values()), self._limit, self._label, self._what, spent=self.spent)
        self.spent += sum(pending.values())
        self._counted.update(pending)
        self._lfs.fetch(objects, progress)


def budgeted(lfs: LfsStore, limit: int | None, label: str, what: str = "this pull") -> LfsStore:
    """``lfs`` held to ``limit`` bytes of downloads (see :class:`TransferBudget`); as it is without a limit or a host."""
    if limit is None or not isinstance(lfs, CachedLfsStore):
        return lfs
    return TransferBudget(lfs, limit, label, what)


def configure(
    publisher: Publisher,
    values: dict[str, str],
    *,
    unset: Sequence[str] = (),
    preset: str | None = None,
    reset: bool = False,
) -> dict[str, Any]:
    """Change the registry's config file in one commit (none if nothing changes); return the new settings, dotted.

    ``values`` maps keys of :data:`lfsreg.registry.config.KEYS` to sizes (``10GiB``);
    ``preset`` first sets the three limits of a host plan (``PRESETS``), which ``values``
    then override; ``unset`` removes keys; ``reset`` starts from no settings (also the way out
    of a damaged file). :class:`UsageError` for an unknown key, size or preset, before anything is written.
    """
    for key in [*values, *unset]:
        if key not in KEYS or (key == "preset" and key in values):
            known = ", ".join(k for k in KEYS if k != "preset")
            raise UsageError(f"unknown setting {key!r}; settings: {known} (and --preset NAME)")
    changes: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        limits = PRESETS[preset][0]
        changes = {f"limits.{k}": getattr(limits, k) for k in LIMIT_KEYS} | {"preset": preset}
    changes |= {key: parse_size(text, key) for key, text in values.items()}
    changes |= dict.fromkeys(unset)
    if values and preset is None:
        changes.setdefault("preset", None)  # hand-set limits are no longer the plan's

    def build(view: RegistryView) -> dict[str, bytes | None]:
        current = {} if reset else read_config(view)
        return {CONFIG: encode(updated(current, changes))}

    said = ", ".join(f"{k}={v}" if v is not None else f"unset {k}" for k, v in changes.items())
    publisher.publish(build, f"config {said}" if changes else "config reset")
    return flatten(read_config(publisher.view()))


__all__ = ["PRESETS", "WARN_AT", "Estimate", "TransferBudget", "budgeted", "check_storage", "check_transfer", "configure", "estimate"]
