"""Keeping registries whole and moving them: ``verify`` and ``copy``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .render import ProgressBars, emit_json
from .sizes import human_size

if TYPE_CHECKING:
    from ..api import Registry


def _registry(repo: str) -> Registry:
    from ..api import Registry  # here, not at import: see lfsreg/__init__.py

    ctx = click.get_current_context()
    return ctx.with_resource(Registry(repo, options=ctx.obj))


@click.command()
@click.argument("repo")
@click.option("--deep", is_flag=True, help="Also download and hash every LFS object (and check layers' diff_ids).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify(repo: str, deep: bool, fmt: str) -> None:
    """Check that every tag of REPO resolves and everything it needs is stored intact.

    Every manifest, index and config must be present and match its digest, every layer
    pointer well-formed, and every LFS object the tags need present on the host with its size
    (asked, not downloaded, unless --deep). One line per problem on stdout; exit 1 if any.
    """
    bars = ProgressBars("verify")
    try:
        report = _registry(repo).verify(deep=deep, progress=bars)
    finally:
        bars.close()
    if fmt == "json":
        emit_json(
            {
                "ok": report.ok,
                "deep": report.deep,
                "tags": report.tags,
                "blobs": report.blobs,
                "objects": report.objects,
                "object_bytes": report.object_bytes,
                "problems": [{"where": p.where, "message": p.message} for p in report.problems],
            }
        )
    else:
        for problem in report.problems:
            click.echo(str(problem))
        how = "downloaded and hashed" if deep else "present"
        click.echo(
            f"{report.tags} tag(s), {report.blobs} manifest(s)/config(s), {report.objects} LFS object(s) "
            f"({human_size(report.object_bytes)}) {how}: " + ("ok" if report.ok else f"{len(report.problems)} problem(s)"),
            err=True,
        )
    if not report.ok:
        sys.exit(1)


@click.command()
@click.argument("src")
@click.argument("dst")
@click.argument("images", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def copy(src: str, dst: str, images: tuple[str, ...], fmt: str) -> None:
    """Copy IMAGES (NAME:TAG or NAME; default every tag) from registry SRC to registry DST.

    SRC and DST are any registry locations (paths, file://, https://, ssh://). Only the LFS
    objects DST lacks are moved; DST gets one commit with the tags, without SRC's history.
    A docker:// registry is not a registry location: pull into one, push from one.
    """
    if dst.startswith("docker://"):
        raise click.UsageError(f"{dst}: copy is between lfsreg registries; into a docker:// one use `lfsreg pull {src} IMAGE... -o {dst}`")
    if src.startswith("docker://"):
        raise click.UsageError(f"{src}: copy is between lfsreg registries; from a docker:// one use `lfsreg push {dst} {src}`")
    bars = ProgressBars("copy")
    try:
        result = _registry(src).copy(dst, list(images), progress=bars)
    finally:
        bars.close()
    if fmt == "json":
        emit_json(
            {
                "tags": [{"name": n, "tag": t, "digest": str(d)} for n, t, d in result.tags],
                "commit": result.commit,
                "objects": result.objects,
                "objects_copied": result.objects_copied,
                "bytes_copied": result.bytes_copied,
                "bytes_downloaded": result.bytes_downloaded,
            }
        )
        return
    for name, tag, digest in result.tags:
        click.echo(f"{name}:{tag}: {digest}")
    click.echo(
        f"{len(result.tags)} tag(s) copied; {result.objects_copied} of {result.objects} LFS object(s) moved "
        f"({human_size(result.bytes_copied)} uploaded, {human_size(result.bytes_downloaded)} downloaded)"
        + ("" if result.commit else "; destination unchanged")
    )


def register(group: click.Group) -> None:
    """Add the commands of this module to ``group``."""
    for command in (verify, copy):
        group.add_command(command)
