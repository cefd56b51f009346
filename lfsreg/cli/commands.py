"""One thin command per :class:`lfsreg.Registry` method."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

import click

from .. import COMPRESSION_ALGORITHMS, DEFAULT_COMPRESSION
from .cost import estimate_printer, traffic_line
from .render import ProgressBars, emit_json, table
from .sigopts import SKIP_SIGNATURES, VERIFY_KEY, private_key, show_signatures
from .sizes import human_size

if TYPE_CHECKING:
    from ..api import Registry, UnreadableImage


def _registry(repo: str) -> Registry:
    from ..api import Registry  # here, not at import: see lfsreg/__init__.py

    ctx = click.get_current_context()
    return ctx.with_resource(Registry(repo, options=ctx.obj))


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)


@click.command()
@click.argument("repo")
@click.option(
    "--format-version",
    type=click.Choice(["1", "3", "4"]),
    default=None,
    help="Registry format version (default 4); 1 or 3 for teams with lfsreg older than version 3 or 4 (docs/format.md).",
)
def init(repo: str, format_version: str | None) -> None:
    """Create an empty registry at REPO."""
    commit = _registry(repo).init(format_version=int(format_version) if format_version else None)
    click.echo(f"initialised lfsreg registry in {repo} ({commit[:12]})")


@click.command()
@click.argument("repo")
@click.argument("sources", nargs=-1, required=True)
@click.option("--tag", "-t", "tags", multiple=True, metavar="NAME:TAG", help="Name the (single) pushed image; repeatable.")
@click.option(
    "--compression",
    type=click.Choice(COMPRESSION_ALGORITHMS),
    default=DEFAULT_COMPRESSION,
    show_default=True,
    help="How to store layers that arrive uncompressed.",
)
@click.option("--compression-level", "level", type=int, default=None, help="zstd 1-19 (default 3) or gzip 1-9 (default 6).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True, help="Layers processed at once.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--dry-run", is_flag=True, help="Stage, verify and estimate what the push would add; upload and commit nothing.")
@click.option(
    "--src-creds", envvar="LFSREG_SRC_CREDS", metavar="USER:PASSWORD", help="For a docker:// source (default: ~/.docker/config.json)."
)
@click.option("--src-tls-verify", type=bool, default=True, metavar="BOOL", help="false: plain HTTP to a docker:// source.")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS/ARCH",
    help="Take only this platform from a docker:// index (repeatable, or comma-separated): one is stored as its image, "
    "several as a new index of just them (a new digest).",
)
@click.option("--sign-key", "sign_key", metavar="FILE", help="Sign each pushed image (cosign's format) in the push's commit.")
def push(
    repo: str,
    sources: tuple[str, ...],
    tags: tuple[str, ...],
    compression: str,
    level: int | None,
    jobs: int,
    fmt: str,
    dry_run: bool,
    src_creds: str | None,
    src_tls_verify: bool,
    platforms: tuple[str, ...],
    sign_key: str | None,
) -> None:
    """Push images from SOURCES.

    SOURCE is NAME:TAG (an image in the Docker engine), docker-archive:PATH[:NAME:TAG],
    oci:DIR[:REF], oci-archive:PATH[:REF] or docker://HOST/NAME[:TAG|@DIGEST] (a registry).

    Before uploading, the push says what it will add to the host's LFS storage and the
    registry's billed total after it; a push over the registry's limits.storage is refused.
    """
    key = private_key(sign_key) if sign_key else None  # a bad key is refused before anything is read
    bars = ProgressBars("push")
    progress = estimate_printer(bars, fmt == "text")
    try:
        result = _registry(repo).push(
            list(sources),
            tags=list(tags),
            compression=compression,
            level=level,
            jobs=jobs,
            progress=progress,
            dry_run=dry_run,
            src_creds=src_creds,
            src_tls_verify=src_tls_verify,
            platform=",".join(platforms) or None,
            sign_key=key,
        )
    finally:
        bars.close()
    if fmt == "json":
        emit_json({**asdict(result), "images": [{**asdict(i), "digest": str(i.digest)} for i in result.images]})
        return
    for image in result.images:
        click.echo(f"{image.name}:{image.tag}: {image.digest}")
    if result.dry_run:
        click.echo("dry run: nothing uploaded, nothing committed")
        return
    click.echo(
        f"{result.layers_uploaded} layer(s) stored ({human_size(result.bytes_uploaded)}), {result.layers_reused} already present"
        + ("" if result.commit else "; registry unchanged")
    )
    click.echo(f"sent to the host: {human_size(result.bytes_to_host)} of LFS objects")


@click.command()
@click.argument("repo")
@click.argument("images", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "dest",
    metavar="DEST",
    help="docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH[:REF], docker://HOST[/NAME[:TAG]] or docker-daemon:",
)
@click.option("--load", is_flag=True, help="Load into the Docker engine (same as -o docker-daemon:).")
@click.option("--platform", default=None, metavar="OS/ARCH", help="Platform to take from a multi-platform image (docker-archive).")
@click.option(
    "--dest-creds", envvar="LFSREG_DEST_CREDS", metavar="USER:PASSWORD", help="For a docker:// output (default: ~/.docker/config.json)."
)
@click.option("--dest-tls-verify", type=bool, default=True, metavar="BOOL", help="false: plain HTTP to a docker:// output.")
@VERIFY_KEY
@SKIP_SIGNATURES
def pull(
    repo: str,
    images: tuple[str, ...],
    dest: str | None,
    load: bool,
    platform: str | None,
    dest_creds: str | None,
    dest_tls_verify: bool,
    verify_keys: tuple[str, ...],
    skip_signatures: bool,
) -> None:
    """Pull IMAGES (NAME:TAG or NAME@sha256:...) into DEST, verifying every digest."""
    if load == bool(dest):
        raise click.UsageError("give exactly one of -o/--output DEST and --load")
    dest = dest or "docker-daemon:"
    from .. import api

    bars = ProgressBars("pull")
    traffic = api.Traffic()
    try:
        pulled = _registry(repo).pull(
            list(images),
            dest,
            platform=platform,
            progress=bars,
            traffic=traffic,
            dest_creds=dest_creds,
            dest_tls_verify=dest_tls_verify,
            verify_keys=verify_keys,
            skip_signatures=skip_signatures,
        )
    finally:
        bars.close()
    for ref, digest in pulled:
        click.echo(f"{ref}: {digest}")
    click.echo(traffic_line(traffic))


@click.command()
@click.argument("repo")
@click.option("--image", "image_globs", multiple=True, metavar="GLOB")
@click.option("--tag", "tag_globs", multiple=True, metavar="GLOB")
@FORMAT
def images(repo: str, image_globs: tuple[str, ...], tag_globs: tuple[str, ...], fmt: str) -> None:
    """List images like `docker images`.

    An image that cannot be read (a damaged or missing tag file, manifest or config) is named
    on stderr, one line each, after the listing of the others; the exit code is then 1. With
    --format json it is also an entry of the list, with an "error" field.
    """
    with _no_cycle_collection():
        _images(repo, image_globs, tag_globs, fmt)


def _images(repo: str, image_globs: tuple[str, ...], tag_globs: tuple[str, ...], fmt: str) -> None:
    unreadable: list[UnreadableImage] = []
    rows = _registry(repo).images(image_globs, tag_globs, unreadable=unreadable)
    if fmt == "json":
        listed = [{**asdict(r), "digest": str(r.digest), "image_id": str(r.image_id) if r.image_id else None} for r in rows]
        failed = [{"name": u.name, "tag": u.tag, "digest": str(u.digest) if u.digest else None, "error": str(u.error)} for u in unreadable]
        emit_json(listed + failed)
    else:
        sizes = {size: human_size(size) for size in {r.size for r in rows}}  # tags of one image share its size: formatted once
        table(
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            [[r.name, r.tag, r.image_id.short if r.image_id else "", _when(r.created), sizes[r.size]] for r in rows],
        )
    for u in unreadable:
        click.echo(f"lfsreg: error: {u.message}", err=True)
    if unreadable:
        sys.exit(1)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """No cycle collection while a listing is read and printed.

    A listing of 90,000 tags is a million objects and makes no reference cycles: the first
    collection after it scanned them all (a fifth of a second, for nothing). They are frozen
    instead (no collection scans them; reference counting still frees them). Never
    ``gc.unfreeze()``: that would also thaw what the host process froze on purpose (the test
    suite freezes its imported modules so that a collection after each in-process CLI run
    scans only that run's objects: thawing them made those collections scan the whole heap,
    66 s more CPU over the suite).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def _when(created: str | None) -> str:
    return (created or "")[:19].replace("T", " ")


@click.command()
@click.argument("repo")
@click.argument("name", required=False)
@click.option("--tag", "tag_globs", multiple=True, metavar="GLOB")
@FORMAT
def tags(repo: str, name: str | None, tag_globs: tuple[str, ...], fmt: str) -> None:
    """List tags (of NAME, or of every image)."""
    with _no_cycle_collection():
        rows = _registry(repo).tags(name, tag_globs)
        if fmt == "json":
            emit_json([{"name": r.name, "tag": r.tag, "digest": str(r.digest)} for r in rows])
            return
        table(["REPOSITORY", "TAG", "DIGEST"], [[r.name, r.tag, str(r.digest)] for r in rows])


@click.command()
@click.argument("repo")
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--signatures", "show_sigs", is_flag=True, help="Also list IMAGE's cosign signatures, checked against --verify-key keys.")
@VERIFY_KEY
def inspect(repo: str, image: str, fmt: str, show_sigs: bool, verify_keys: tuple[str, ...]) -> None:
    """Show the manifest, platforms, config and layers of IMAGE."""
    reg = _registry(repo)
    info = reg.inspect(image)
    if show_sigs or verify_keys:
        info["signatures"] = reg.signatures(image, verify_keys)
    if fmt == "json":
        emit_json(info)
        return
    for key in ("name", "tag", "digest", "mediaType", "platforms", "imageID", "created", "size"):
        if info.get(key) is not None:
            value = info[key]
            click.echo(f"{key + ':':12} {', '.join(value) if isinstance(value, list) else value}")
    nested = "images" in info  # an index: one entry per platform
    for image_info in cast("list[dict[str, Any]]", info["images"] if nested else [info]):
        if nested:
            click.echo(f"{image_info['platform']}: {image_info['manifest']}")
        for layer in image_info.get("layers", []):
            click.echo(f"  {layer['digest']}  {layer['compression'] or '?':5}  {human_size(layer['size']):>8}")
    if "signatures" in info:
        show_signatures(cast("list[dict[str, Any]]", info["signatures"]))


@click.command()
@click.argument("repo")
@click.argument("images", nargs=-1, required=True)
def rm(repo: str, images: tuple[str, ...]) -> None:
    """Untag IMAGES (NAME:TAG)."""
    for ref in _registry(repo).remove(list(images)):
        click.echo(f"untagged {ref}")


def register(group: click.Group) -> None:
    """Add every command to ``group``."""
    for command in (init, push, pull, images, tags, inspect, rm):
        group.add_command(command)
