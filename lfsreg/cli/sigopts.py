"""Options and output shared by the signing commands (``pull --verify-key``, ``inspect --signatures``, ``keygen --sign``).

Private keys come from ``--key FILE`` or ``LFSREG_SIGNING_KEY`` (the PEM text itself, e.g. a CI
secret), encrypted ones with ``LFSREG_KEY_PASSWORD``; no key material is ever printed.
"""

from __future__ import annotations

import os
from typing import Any

import click

from .render import table

VERIFY_KEY = click.option(
    "--verify-key",
    "verify_keys",
    multiple=True,
    metavar="PUB",
    help="A public key (PEM file, as `cosign verify --key` takes); repeatable: one valid signature by any of them is required.",
)

SKIP_SIGNATURES = click.option(
    "--insecure-skip-signatures",
    "skip_signatures",
    is_flag=True,
    help="Pull even what the registry's trust policy requires signed, without checking signatures.",
)


def private_key(path: str | None) -> Any:
    """The signing key of ``--key`` (a file), else of ``LFSREG_SIGNING_KEY`` (text); password from ``LFSREG_KEY_PASSWORD``."""
    from ..api import load_signing_key

    return load_signing_key(path, os.environ.get("LFSREG_SIGNING_KEY"), os.environ.get("LFSREG_KEY_PASSWORD"))


def annotations_of(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-a KEY=VALUE`` options as a dict; a usage error for one without ``=``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"-a takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


def keygen_sign(out: str, key_type: str, force: bool) -> None:
    """``lfsreg keygen --sign``: a signing key pair (PKCS#8, encrypted with ``LFSREG_KEY_PASSWORD`` if set)."""
    from ..api import write_signing_keypair

    password = os.environ.get("LFSREG_KEY_PASSWORD")
    pair = write_signing_keypair(out, key_type, password.encode() if password else None, force=force)
    state = "encrypted with LFSREG_KEY_PASSWORD" if pair.encrypted else "NOT encrypted: set LFSREG_KEY_PASSWORD to encrypt it"
    click.echo(f"private key: {pair.private_path} ({pair.algorithm}, PKCS#8, mode 0600, {state})")
    click.echo(f"public key:  {pair.public_path} ({pair.key_id})")
    click.echo("")
    click.echo(f"Sign with: lfsreg sign REPO IMAGE --key {pair.private_path}   (or the file's content in LFSREG_SIGNING_KEY)")
    click.echo(f"Verify with: lfsreg pull REPO IMAGE --verify-key {pair.public_path} -o ...,  or cosign verify --key {pair.public_path}")


def show_signatures(rows: list[dict[str, Any]]) -> None:
    """The ``inspect --signatures`` lines."""
    if not rows:
        click.echo("signatures:  none")
        return
    table(
        ["PAYLOAD", "VALID", "KEY / PROBLEM"],
        [[r["payload"][:19], "yes" if r["valid"] else "no", r["keyId"] or r["problem"] or "(give --verify-key to check)"] for r in rows],
    )
