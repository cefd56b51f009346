"""What a registry costs: ``du`` (sizes from git alone)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from ..progress import ESTIMATE, ProgressEvent
from .render import emit_json, table
from .sizes import human_size

if TYPE_CHECKING:
    from ..api import Registry, RegistryUsage, Traffic


def _registry(repo: str) -> Registry:
    from ..api import Registry  # here, not at import: see lfsreg/__init__.py

    ctx = click.get_current_context()
    return ctx.with_resource(Registry(repo, options=ctx.obj))


def estimate_lines(detail: dict[str, Any]) -> list[str]:
    """The text of a push's estimate (the ``detail`` of its ``estimate`` progress event)."""
    least = "" if detail.get("complete", True) else "at least "
    line = (
        f"estimate: {detail['objects']} LFS object(s) the host lacks, {human_size(detail['bytes'])} to upload; "
        f"billed LFS storage {least}{human_size(detail['billed_before'])} -> {least}{human_size(detail['billed_after'])}"
    )
    limit = detail.get("storage_limit")
    if limit:
        line += f" of limits.storage {exact_size(limit)} ({100 * detail['billed_after'] / limit:.0f} %)"
    return [line]


def estimate_printer(then: Callable[[ProgressEvent], None], text: bool) -> Callable[[ProgressEvent], None]:
    """A progress callback that prints a push's estimate when it comes (with ``text``), passing every other event on."""

    def progress(event: ProgressEvent) -> None:
        if event.action != ESTIMATE or event.detail is None:
            then(event)
            return
        if text:
            for line in estimate_lines(event.detail):
                click.echo(line)
        if event.detail.get("warning"):
            click.echo(f"lfsreg: warning: {event.detail['warning']}", err=True)

    return progress


def traffic_line(traffic: Traffic) -> str:
    """The last line of a pull: the bytes it moved and from where."""
    if traffic.local:
        return f"read {human_size(traffic.from_cache)} of layers from the registry's disk (no host transfer)"
    limit = f" (limits.transfer: {exact_size(traffic.transfer_limit)} a month)" if traffic.transfer_limit else ""
    return f"moved {human_size(traffic.from_host)} from the host{limit}, {human_size(traffic.from_cache)} from the local cache"


def usage_json(u: RegistryUsage) -> dict[str, Any]:
    """``du --format json``: rows, then the registry's totals."""
    return {
        "tags": [{**asdict(t), "digest": str(t.digest)} for t in u.tags],
        "images": [asdict(i) for i in u.images],
        "registry": {
            "live_bytes": u.live_bytes,
            "live_objects": u.live_objects,
            "history_bytes": u.history_bytes,
            "history_objects": u.history_objects,
            "history_complete": u.history_complete,
            "git_bytes": u.git_bytes,
            "commits": u.commits,
        },
        "unreadable": [asdict(b) for b in u.unreadable],
    }


@click.command()
@click.argument("repo")
@click.option("--image", "image_globs", multiple=True, metavar="GLOB", help="Only image names matching GLOB (repeatable).")
@click.option("--tag", "tag_globs", multiple=True, metavar="GLOB", help="Only tags matching GLOB (repeatable).")
@click.option("--by", type=click.Choice(["tag", "image"]), default="tag", show_default=True, help="One row per tag, or per image name.")
@click.option("-s", "--summary", is_flag=True, help="Only the registry's totals.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def du(repo: str, image_globs: tuple[str, ...], tag_globs: tuple[str, ...], by: str, summary: bool, fmt: str) -> None:
    """Show what the images in REPO take, from git alone (nothing is downloaded).

    Per tag (or image name): SIZE, the LFS bytes its layers take; UNIQUE, the part no other
    tag (name) references, which removing it would free once collected; SHARED, the rest.
    Then the registry: LFS bytes live tags reference, LFS bytes any commit references (what
    a git host bills: a layer stays billed while history references it), git bytes.
    An image whose tag or manifest cannot be read is named on stderr; the exit code is then 1.
    """
    u = _registry(repo).du(image_globs, tag_globs)
    if fmt == "json":
        emit_json(usage_json(u))
    else:
        if not summary and by == "tag":
            rows = [[t.name, t.tag, human_size(t.size), human_size(t.unique), human_size(t.shared)] for t in u.tags]
            table(["REPOSITORY", "TAG", "SIZE", "UNIQUE", "SHARED"], rows)
        elif not summary:
            rows = [[i.name, str(i.tags), human_size(i.size), human_size(i.unique), human_size(i.shared)] for i in u.images]
            table(["REPOSITORY", "TAGS", "SIZE", "UNIQUE", "SHARED"], rows)
        if not summary:
            click.echo()
        partial = "" if u.history_complete else ", history incomplete: at least"
        click.echo(f"live tags reference:        {human_size(u.live_bytes):>8} in {u.live_objects} LFS object(s)")
        click.echo(f"history references:         {human_size(u.history_bytes):>8} in {u.history_objects} LFS object(s){partial}")
        click.echo(f"git objects:                {human_size(u.git_bytes):>8} ({u.commits} commit(s))")
        click.echo(f"billed LFS storage (host):  {human_size(u.history_bytes):>8}")
    for bad in u.unreadable:
        what = f"{bad.name}:{bad.tag}" if bad.tag is not None else bad.name
        click.echo(f"lfsreg: error: {what}: {bad.error}", err=True)
    if u.unreadable:
        raise SystemExit(1)


def exact_size(n: int) -> str:
    """``10GiB``, ``2GB``: the unit that divides ``n`` (limits are set that way), else :func:`human_size`."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 1000)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return human_size(n)


def _shown(key: str, value: object) -> str:
    if key.startswith("limits.") and isinstance(value, int):
        return f"{value} ({exact_size(value)})"
    return str(value)


@click.command()
@click.argument("repo")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--unset", "unset", multiple=True, metavar="KEY", help="Remove a setting (repeatable).")
@click.option("--preset", metavar="NAME", help="Set the limits of a host's plan (see --list-presets).")
@click.option("--reset", is_flag=True, help="Remove every setting (also the way out of a damaged config file).")
@click.option("--list-presets", is_flag=True, help="List the presets and their limits, then exit.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def config(
    repo: str, key: str | None, value: str | None, unset: tuple[str, ...], preset: str | None, reset: bool, list_presets: bool, fmt: str
) -> None:
    r"""Show or change REPO's settings: limits.storage, limits.object, limits.transfer.

    \b
    lfsreg config REPO                       list the settings
    lfsreg config REPO limits.storage        show one
    lfsreg config REPO limits.storage 10GiB  set one (sizes: 10GiB, 2GB, 500MB, bytes)
    lfsreg config REPO --preset github-free  a host plan's limits (docs/limits.md)

    A push that would take the registry's billed LFS storage over limits.storage is refused
    before it uploads anything; past 80 % it warns. Changes are one commit in the registry.
    """
    from ..api import PRESETS

    if list_presets:
        rows = {name: {"description": text, **asdict(limits)} for name, (limits, text) in PRESETS.items()}
        if fmt == "json":
            emit_json(rows)
        else:
            for name, row in rows.items():
                click.echo(f"{name:20} {row['description']}")
        return
    if value is not None and (unset or reset):
        raise click.UsageError("give KEY VALUE, or --unset/--reset, not both")
    values = {key: value} if key is not None and value is not None else {}
    settings = _registry(repo).config(values, unset=unset, preset=preset, reset=reset)
    if key is not None and value is None:
        if key not in settings:
            raise SystemExit(1)  # as `git config KEY` does for an unset key
        click.echo(json.dumps(settings[key]) if fmt == "json" else settings[key])
        return
    if fmt == "json":
        emit_json(settings)
        return
    for name, setting in sorted(settings.items()):
        click.echo(f"{name}={_shown(name, setting)}")


@click.command()
@click.argument("repo")
@click.option("--host", "kind", type=click.Choice(["github", "gitlab", "forgejo"]), help="The host's API (default: from REPO's host name).")
@click.option("--api-url", metavar="URL", help="The host's REST API (default: https://api.github.com, https://HOST/api/v4, /api/v1).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def usage(repo: str, kind: str | None, api_url: str | None, fmt: str) -> None:
    """Show the host's own storage meters for REPO, where the credentials allow.

    GitLab: the project's LFS and repository sizes (token scope read_api, Reporter role);
    Forgejo: the user's quota use (read:user); GitHub: the account's Git LFS billing usage
    (classic scope user, or fine-grained Plan: read). A meter the token may not read is named
    with the permission it needs. For what lfsreg itself counts, see `lfsreg du`.
    """
    found = _registry(repo).usage(kind=kind, api_url=api_url)
    if fmt == "json":
        emit_json(asdict(found))
        return
    click.echo(f"{found.kind} ({found.api_url}):")
    for meter in found.meters:
        value = human_size(int(meter.value)) if meter.unit == "bytes" else f"{meter.value:g} {meter.unit}"
        click.echo(f"  {meter.name}: {value}")
    for line in found.missing:
        click.echo(f"  not available: {line}")


def register(group: click.Group) -> None:
    """Add the cost commands to ``group``."""
    group.add_command(du)
    group.add_command(config)
    group.add_command(usage)
