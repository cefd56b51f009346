"""``lfsreg sign``: cosign-format image signatures, kept in the registry (docs/format.md, "Signatures")."""

from __future__ import annotations

import os
from typing import Any

import click

from .commands import _registry
from .render import emit_json
from .sigopts import annotations_of, private_key

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


@click.command()
@click.argument("repo")
@click.argument("images", nargs=-1, required=True)
@click.option("--key", "key_path", metavar="FILE", help="Private key file (default: the key in LFSREG_SIGNING_KEY).")
@click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE", help="A claim in the payload's optional part.")
@click.option("--recursive", is_flag=True, help="For a multi-platform image, sign each platform's manifest too.")
@FORMAT
def sign(repo: str, images: tuple[str, ...], key_path: str | None, annotations: tuple[str, ...], recursive: bool, fmt: str) -> None:
    """Sign IMAGES (NAME:TAG or NAME@sha256:...) the way `cosign sign --key` does, in one commit.

    Each signature goes to the image's NAME:sha256-<hex>.sig manifest (added beside those there);
    `cosign verify --key KEY.pub --insecure-ignore-tlog` accepts it through `lfsreg serve`.
    """
    notes = annotations_of(annotations)
    key = private_key(key_path)
    result = _registry(repo).sign(list(images), key, annotations=notes, recursive=recursive)
    if fmt == "json":
        emit_json(
            {
                "key": result.key_id,
                "commit": result.commit,
                "signed": [{"name": s.name, "digest": str(s.digest), "tag": s.tag, "added": s.added} for s in result.signed],
            }
        )
        return
    for s in result.signed:
        click.echo(f"{s.name}@{s.digest}: {'signed' if s.added else 'already signed by this key'} ({s.name}:{s.tag})")
    click.echo(f"key {result.key_id}" + ("" if result.commit else "; registry unchanged"))


@click.group()
@click.argument("repo")
@click.pass_context
def trust(ctx: click.Context, repo: str) -> None:
    """The registry's trust policy: which keys must sign which images (kept in the registry).

    Once a rule names an image (NAME_GLOB, e.g. 'acme/*'), every `lfsreg pull` of it, by anyone,
    refuses it without a valid signature by one of the rule's keys (unless
    --insecure-skip-signatures). The first policy needs no key; every change after it must be
    signed with --key, a private key the policy trusts (docs/format.md, "Trust policy").
    """
    ctx.meta["lfsreg.trust.repo"] = repo


def _trust_registry() -> Any:
    return _registry(click.get_current_context().meta["lfsreg.trust.repo"])


KEY = click.option("--key", "key_path", metavar="FILE", help="A private key the policy trusts (default: LFSREG_SIGNING_KEY).")


def _key(key_path: str | None) -> Any:
    if key_path is None and not os.environ.get("LFSREG_SIGNING_KEY"):
        return None  # the first policy needs none; a later change says it needs one
    return private_key(key_path)


def _changed(commit: str | None, fmt: str, what: str) -> None:
    if fmt == "json":
        emit_json({"commit": commit, "changed": commit is not None})
    else:
        click.echo(f"{what} ({commit[:12]})" if commit else "trust policy unchanged")


@trust.command("add")
@click.argument("images", metavar="NAME_GLOB")
@click.argument("public_keys", nargs=-1, required=True, metavar="PUB...")
@KEY
@FORMAT
def trust_add(images: str, public_keys: tuple[str, ...], key_path: str | None, fmt: str) -> None:
    """Require images matching NAME_GLOB to be signed by one of the PUB keys (PEM files)."""
    commit = _trust_registry().trust_add(images, list(public_keys), _key(key_path))
    _changed(commit, fmt, f"images {images!r} now need a signature by one of {len(public_keys)} key(s)")


@trust.command("remove")
@click.argument("images", metavar="NAME_GLOB")
@click.argument("public_keys", nargs=-1, metavar="[PUB...]")
@KEY
@FORMAT
def trust_remove(images: str, public_keys: tuple[str, ...], key_path: str | None, fmt: str) -> None:
    """Stop trusting PUB keys for NAME_GLOB (no PUB: remove the rule)."""
    commit = _trust_registry().trust_remove(images, list(public_keys), _key(key_path))
    _changed(commit, fmt, f"rule {images!r} changed")


@trust.command("list")
@FORMAT
def trust_list(fmt: str) -> None:
    """The policy's rules (its chain checked first)."""
    info = _trust_registry().trust_list()
    if fmt == "json":
        emit_json(info)
        return
    if info["policy"] is None:
        click.echo("no trust policy: pulls check signatures only with --verify-key")
        return
    for rule in info["rules"]:
        click.echo(f"{rule['images']}")
        for key_id in rule["keys"]:
            click.echo(f"  {key_id}")
    click.echo(f"policy {info['policy']} (root {info['root']})")


@trust.command("pin")
@FORMAT
def trust_pin(fmt: str) -> None:
    """Trust the registry's current policy chain on this machine (after its owners replaced it on purpose)."""
    root = _trust_registry().trust_pin()
    if fmt == "json":
        emit_json({"root": root})
    else:
        click.echo(f"this machine now trusts the policy chain rooted at {root}" if root else "no trust policy; pin removed")
