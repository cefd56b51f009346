"""``history``, ``rollback``, ``prune`` and ``gc``: a tag's past, and getting space back."""

from __future__ import annotations

import datetime
from dataclasses import asdict
from typing import Any

import click

from .commands import _registry
from .render import emit_json, table
from .sizes import human_size

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


def _when(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command()
@click.argument("repo")
@click.argument("image", metavar="NAME[:TAG]")
@FORMAT
def history(repo: str, image: str, fmt: str) -> None:
    """Every digest the tag (every tag of NAME) has named, newest first: when, and in which commit."""
    found = _registry(repo).history(image)
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "tag": c.tag,
            "action": c.action,
            "digest": str(c.digest) if c.digest else None,
            "previous": str(c.previous) if c.previous else None,
            "commit": c.commit,
            "time": _when(c.time),
            "message": c.message.splitlines()[0] if c.message else "",
        }
        for c in found.changes
    ]
    if fmt == "json":
        emit_json({"changes": rows, "truncated": found.truncated})
        return
    table(
        ["TIME", "TAG", "ACTION", "DIGEST", "COMMIT"],
        [[r["time"], f"{r['name']}:{r['tag']}", r["action"], r["digest"] or "-", r["commit"][:12]] for r in rows],
    )
    if found.truncated:
        click.echo("note: the history available ends before the registry's first commit", err=True)


@click.command()
@click.argument("repo")
@click.argument("image", metavar="NAME:TAG")
@click.option("--to", "to", metavar="DIGEST", help="A digest the tag named before (see `lfsreg history`).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Go back N digests (default 1: the one before the current).")
@FORMAT
def rollback(repo: str, image: str, to: str | None, steps: int | None, fmt: str) -> None:
    """Point NAME:TAG back at an earlier digest, in one commit."""
    if to is not None and steps is not None:
        raise click.UsageError("give --to DIGEST or --steps N, not both")
    result = _registry(repo).rollback(image, to=to, steps=steps)
    if fmt == "json":
        emit_json(
            {
                "name": result.name,
                "tag": result.tag,
                "previous": str(result.previous) if result.previous else None,
                "digest": str(result.digest),
                "commit": result.commit,
                "restored_files": result.restored,
            }
        )
        return
    ref = f"{result.name}:{result.tag}"
    if result.commit is None:
        click.echo(f"{ref} already names {result.digest}; registry unchanged")
        return
    click.echo(f"{ref}: {result.previous or '(untagged)'} -> {result.digest} ({result.commit[:12]})")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Age(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    """A duration: a number and a unit s, m, h, d or w (``30d``, ``12h``); a bare number is seconds."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Seconds, from ``30d``-like text."""
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in _UNITS else "s"
        number = text[:-1] if text[-1:] in _UNITS else text
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not an age (e.g. 30d, 12h, 90m, 0)", param, ctx)
        if not 0 <= seconds < float("inf"):
            self.fail(f"{value!r} is not an age (e.g. 30d, 12h, 90m, 0)", param, ctx)
        return seconds


AGE = Age()


@click.command()
@click.argument("repo")
@click.option("--keep-last", type=click.IntRange(0), default=None, metavar="N", help="Keep the N most recently set tags of each image.")
@click.option("--older-than", type=AGE, default=None, help="Untag only tags set longer ago than AGE (30d, 12h...).")
@click.option("--image", "images", multiple=True, metavar="GLOB", help="Only images whose name matches (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="GLOB", help="Only tags that match (repeatable).")
@click.option("--protect", multiple=True, metavar="GLOB", help="Never untag tags (TAG or NAME:TAG) that match (repeatable).")
@click.option("--dry-run", is_flag=True, help="Say what would be untagged and freed; change nothing.")
@FORMAT
def prune(
    repo: str,
    keep_last: int | None,
    older_than: float | None,
    images: tuple[str, ...],
    tags: tuple[str, ...],
    protect: tuple[str, ...],
    dry_run: bool,
    fmt: str,
) -> None:
    """Untag by policy, in one commit, and say how many bytes that frees once `lfsreg gc` runs.

    Per image, the tags the filters select are ordered by when they were last set; a tag is
    untagged when it is beyond the --keep-last newest and set longer ago than --older-than
    (each applies only when given).
    """
    from .. import PrunePolicy  # here, not at import: see lfsreg/__init__.py

    result = _registry(repo).prune(PrunePolicy(keep_last, older_than, images, tags, protect), dry_run=dry_run)
    if fmt == "json":
        emit_json(
            {
                "pruned": [{"name": p.name, "tag": p.tag, "digest": str(p.digest), "set": _when(p.time)} for p in result.pruned],
                "kept": result.kept,
                "layers_freed": result.layers_freed,
                "bytes_freed": result.bytes_freed,
                "metadata_bytes_freed": result.metadata_bytes_freed,
                "commit": result.commit,
                "dry_run": result.dry_run,
            }
        )
        return
    verb = "would untag" if dry_run else "untagged"
    for p in result.pruned:
        click.echo(f"{verb} {p.name}:{p.tag} ({p.digest.short}, set {_when(p.time)})")
    click.echo(
        f"{len(result.pruned)} tag(s) {verb}, {result.kept} kept; "
        f"{human_size(result.bytes_freed)} in {result.layers_freed} layer(s) freed once collected (lfsreg gc)"
    )


@click.command()
@click.argument("repo")
@click.option(
    "--keep-history",
    type=AGE,
    default="0",
    show_default=True,
    help="Keep the commits of the last AGE (rollback works there); squash older history into one commit.",
)
@click.option("--grace", type=AGE, default="1h", show_default=True, help="Local registry: keep unreferenced objects newer than AGE.")
@click.option(
    "--commit-map",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="FILE",
    help="Write the old and new id of every rewritten commit (what GitLab's repository cleanup takes).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be rewritten and freed; change nothing.")
@FORMAT
def gc(repo: str, keep_history: float, grace: float, commit_map: str | None, dry_run: bool, fmt: str) -> None:
    """Rewrite the registry branch to reference only what tags need, then free the space.

    A local registry's unreferenced LFS and git objects are deleted; a remote host keeps
    them until it collects them itself (the output says how).
    """
    r = _registry(repo).gc(keep_history=keep_history, grace=grace, dry_run=dry_run)
    if commit_map and not dry_run:
        with open(commit_map, "w") as f:
            f.write("old new\n" + "".join(f"{old} {new}\n" for old, new in r.commit_map))
    if fmt == "json":
        emit_json({k: v for k, v in asdict(r).items() if k != "commit_map"})
        return
    would = "would " if dry_run else ""
    click.echo(
        f"history: {r.commits_before} commit(s) -> {r.commits_after}"
        + (f" ({r.squashed} squashed)" if r.squashed else "")
        + ("" if dry_run or r.commit else "; branch unchanged")
    )
    click.echo(f"layers referenced: {human_size(r.referenced_bytes)} -> {human_size(r.live_bytes)} ({r.live_layers} layer(s))")
    if r.local:
        click.echo(
            f"{would}free {human_size(r.lfs_bytes_freed)} in {r.lfs_deleted} LFS object(s); "
            f"repository {human_size(r.disk_before)} -> {human_size(r.disk_after)}"
        )
    elif r.remote_hint:
        click.echo(f"note: {r.remote_hint}")


COMMANDS = (history, rollback, prune, gc)
