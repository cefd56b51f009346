"""``lfsreg keygen``: a deploy key for one registry repository, and where each git host wants it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import click

from .. import DEFAULT_KEY_COMMENT

DEFAULT_OUT = "lfsreg_deploy_key"
DEFAULT_SIGNING_OUT = "lfsreg_signing_key"


def _owner_repo(repo: str | None) -> tuple[str, str]:
    """``(host, owner/name)`` of a repository URL (ssh, scp-like or https); placeholders if none."""
    if not repo:
        return "HOST", "OWNER/REPO"
    from ..api import is_ssh_location, parse_ssh_url  # here: see lfsreg/__init__.py

    if is_ssh_location(repo):
        url = parse_ssh_url(repo)
        host, path = url.host, url.path
    else:
        parts = urlsplit(repo if "://" in repo else "https://" + repo)
        host, path = parts.hostname or "HOST", parts.path
    path = re.sub(r"\.git$", "", path.strip("/").removeprefix("~/")) or "OWNER/REPO"
    return host, path


def instructions(repo: str | None) -> list[str]:
    """Where to add the public key as a deploy key with write access, per host (all four if unknown)."""
    host, path = _owner_repo(repo)
    owner = path.split("/")[0]
    name = path.split("/")[-1]
    places = {
        "github": f"GitHub:    https://{host if host != 'HOST' else 'github.com'}/{path}/settings/keys/new  "
        "(Settings > Deploy keys > Add deploy key): paste the key, tick 'Allow write access'",
        "gitlab": f"GitLab:    https://{host if host != 'HOST' else 'gitlab.com'}/{path}/-/settings/repository  "
        "(Settings > Repository > Deploy keys > Add new key): paste the key, tick 'Grant write permissions to this key'",
        "gitea": f"Gitea:     https://{host}/{path}/settings/keys  "
        "(Settings > Deploy Keys > Add Deploy Key): paste the key, tick 'Enable Write Access'",
        "bitbucket": f"Bitbucket: Data Center: repository {name} > Repository settings > Access keys > Add key, with write permission. "
        f"Cloud: repository access keys are read-only, so add the key to a bot account that has write access to "
        f"{owner}/{name} only (Personal settings > SSH keys, https://bitbucket.org/account/settings/ssh-keys/)",
    }
    known = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket", "codeberg.org": "gitea"}
    if host in known:
        return [places[known[host]]]
    return list(places.values())


@click.command()
@click.option(
    "--out",
    "-o",
    "out",
    default=DEFAULT_OUT,
    show_default=True,
    metavar="FILE",
    help="Private key file (mode 0600); the public key goes to FILE.pub.",
)
@click.option("--comment", "-C", default=DEFAULT_KEY_COMMENT, show_default=True, help="Comment at the end of the public key.")
@click.option("--repo", metavar="URL", help="The registry repository, to print the exact page where the key goes.")
@click.option("--force", is_flag=True, help="Replace FILE and FILE.pub if they exist.")
@click.option("--sign", "signing", is_flag=True, help="An image signing key pair instead (PKCS#8 + PUBLIC KEY PEM, as cosign reads).")
@click.option(
    "--type",
    "key_type",
    type=click.Choice(["ecdsa-p256", "ed25519"]),
    default="ecdsa-p256",
    show_default=True,
    help="With --sign: the key type (ECDSA P-256 is cosign's default).",
)
def keygen(out: str, comment: str, repo: str | None, force: bool, signing: bool, key_type: str) -> None:
    """Create an ed25519 SSH deploy key for one registry repository (or, with --sign, an image signing key).

    Add the public key to the repository as a deploy key WITH WRITE ACCESS, store the private
    key (the content of FILE) as a CI secret given to lfsreg as LFSREG_SSH_KEY, then delete FILE.

    With --sign: FILE is a PKCS#8 private key (encrypted when LFSREG_KEY_PASSWORD is set) for
    `lfsreg sign --key FILE`, and FILE.pub the public key for `--verify-key`, `lfsreg trust` and
    `cosign verify --key`.
    """
    if signing:
        from .sigopts import keygen_sign

        keygen_sign(out if out != DEFAULT_OUT else DEFAULT_SIGNING_OUT, key_type, force)
        return
    if key_type != "ecdsa-p256":
        raise click.UsageError("--type is for --sign keys; deploy keys are ed25519")
    from ..api import write_keypair

    pair = write_keypair(out, comment, force=force)
    click.echo(f"private key: {pair.private_path} (mode 0600; keep it secret)")
    click.echo(f"public key:  {pair.public_path} ({pair.fingerprint})")
    click.echo("")
    click.echo(pair.public_line)
    click.echo("")
    click.echo("Add the public key above as a deploy key with write access:")
    for line in instructions(repo):
        click.echo(f"  {line}")
    click.echo("")
    click.echo(
        f"Then store the content of {pair.private_path} as a CI secret named LFSREG_SSH_KEY (lfsreg reads the key "
        "itself from that variable), and delete the file."
    )
