"""``lfsreg serve``: the registry over the OCI distribution API, for every container client."""

from __future__ import annotations

import json
import sys

import click


@click.command("serve")
@click.argument("repo")
@click.option(
    "--listen", default="127.0.0.1:5000", show_default=True, metavar="HOST:PORT", help="Address to listen on (port 0: any free port)."
)
@click.option(
    "--refresh",
    type=float,
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="A change pushed to the registry by someone else is served within this time.",
)
@click.option(
    "--htpasswd",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="Users with bcrypt passwords (htpasswd -B): clients must log in, and may push.",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="Tokens, one a line: clients send one (Bearer, or as a password), and may push.",
)
@click.option(
    "--read-only", is_flag=True, help="Refuse pushes and deletes even from logged-in clients (the default without --htpasswd/--token-file)."
)
@click.option("--redirect", is_flag=True, help="Answer a blob GET with a 307 to its LFS URL when that URL needs no header (presigned).")
@click.option(
    "--require-signatures",
    is_flag=True,
    help="Serve a manifest the registry's trust policy covers only when signed as it asks (`lfsreg trust`).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="How to announce the address."
)
@click.pass_obj
def serve(
    options: object,
    repo: str,
    listen: str,
    refresh: float,
    htpasswd: str | None,
    token_file: str | None,
    read_only: bool,
    redirect: bool,
    require_signatures: bool,
    fmt: str,
) -> None:
    """Serve REPO to container clients (OCI distribution API v1.1) until Ctrl-C or SIGTERM.

    Pull with any client: skopeo copy docker://127.0.0.1:5000/NAME:TAG ... (plain HTTP: use
    --src-tls-verify=false, podman --tls-verify=false, or a TLS proxy in front; see the README).
    Requests are logged with -v.
    """
    from .. import RegistryServer, ServeOptions
    from ..api import Registry

    registry = click.get_current_context().with_resource(Registry(repo, options=options))  # type: ignore[arg-type]
    settings = ServeOptions(listen, refresh, htpasswd, token_file, read_only, redirect, require_signatures=require_signatures)
    server = RegistryServer(registry, settings)
    mode = "read-write" if server.writable else "read-only"
    if fmt == "json":
        click.echo(json.dumps({"url": server.url, "registry": registry.label, "writable": server.writable}))  # one line: read it and go
    else:
        click.echo(f"lfsreg serve: {registry.label} at {server.url} ({mode}); Ctrl-C to stop", err=True)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (the CLI turns it into one): a clean stop
        pass
    finally:
        server.close()
    click.echo("lfsreg serve: stopped", err=True)
