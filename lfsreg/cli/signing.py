"""``lfsreg sign``: cosign-format image signatures, kept in the registry (docs/format.md, "Signatures")."""

from __future__ import annotations

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
