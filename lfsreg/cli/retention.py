"""``history``, ``rollback``, ``prune`` and ``gc``: a tag's past, and getting space back."""

from __future__ import annotations

import datetime
from typing import Any

import click

from .commands import _registry
from .render import emit_json, table

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


COMMANDS = (history, rollback)
