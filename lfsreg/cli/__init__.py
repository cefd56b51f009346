"""The ``lfsreg`` command: a thin shell over :mod:`lfsreg.api`. The only package importing click."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

import click

from .. import __version__
from ..errors import LfsregError
from . import maintain
from .commands import register
from .cost import register as register_cost
from .keygen import keygen
from .retention import COMMANDS as RETENTION
from .serve import serve
from .signing import sign, trust

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lfsreg")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.option("--lfs-url", envvar="LFSREG_LFS_URL", metavar="URL", help="LFS endpoint (default: from .lfsconfig, else REPO.git/info/lfs).")
@click.option(
    "--ca-bundle",
    envvar="LFSREG_CA_BUNDLE",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificates for HTTPS, git and LFS alike (default: GIT_SSL_CAINFO, git's http.sslCAInfo, "
    "REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE, else the system's).",
)
@click.option("--transfers", type=click.IntRange(1, 64), default=8, show_default=True, help="Concurrent LFS transfers.")
@click.option(
    "--identity", metavar="KEY", help="SSH private key: a file, or the key itself (LFSREG_SSH_KEY). Default: ssh-agent, then ~/.ssh/id_*."
)
@click.option("--known-hosts", metavar="FILE", help="SSH known_hosts file (LFSREG_SSH_KNOWN_HOSTS; default ~/.ssh/known_hosts).")
@click.option(
    "--accept-new-host-key",
    is_flag=True,
    help="Record the key of an SSH host seen for the first time "
    "instead of refusing (LFSREG_SSH_ACCEPT_NEW=1). A changed key is always refused.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    verbose: bool,
    lfs_url: str | None,
    ca_bundle: str | None,
    transfers: int,
    identity: str | None,
    known_hosts: str | None,
    accept_new_host_key: bool,
) -> None:
    """A Docker/OCI image registry in a git repository, layers in Git LFS.

    REPO is a path to a local registry (a bare git repository), or a URL: https://host/org/images.git
    (credentials from LFSREG_USERNAME/LFSREG_PASSWORD or LFSREG_TOKEN, the URL, ~/.netrc or
    ~/.git-credentials) or file:///path, or over SSH: git@host:org/images.git or
    ssh://user@host:port/org/images.git (no ssh binary needed; see --identity).
    """
    if not verbose:
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings are noise to users
    # paramiko logs tracebacks of its transport thread; lfsreg reports SSH failures itself
    logging.getLogger("paramiko").setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    from ..api import RemoteOptions, SshSettings  # here: `lfsreg --help` and usage errors need none of it

    ssh = SshSettings(identity=identity, known_hosts=known_hosts, accept_new_host_key=accept_new_host_key)
    ctx.obj = RemoteOptions(lfs_url=lfs_url, ca_bundle=ca_bundle, transfers=transfers, ssh=ssh)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


register(cli)
register_cost(cli)
cli.add_command(keygen)
maintain.register(cli)
cli.add_command(serve)
cli.add_command(sign)
cli.add_command(trust)
for _command in RETENTION:
    cli.add_command(_command)


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (locks released, staging removed), exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    # Staged layers go first, in case unwinding is slow (workers stop at their next write).
    # Only the API stages files: if it is not (fully) imported, there is nothing to discard, and
    # importing it here, inside a signal handler, could meet its half-done import.
    discard = getattr(sys.modules.get("lfsreg.api"), "discard_own_staging", None)
    if discard is not None:
        discard()
    # Inside a section that must not be cut (a repository being opened: lfsreg.interrupts), the
    # exception is raised as the section ends. No sections before that module is imported.
    defer = getattr(sys.modules.get("lfsreg.interrupts"), "defer", None)
    if defer is None or not defer(_Terminated()):
        raise _Terminated


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; map library errors to one line on stderr and an exit code."""
    handling = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if handling else None
    try:
        _run(argv)
    except _Terminated:  # SIGTERM while the outcome was being reported
        sys.exit(128 + signal.SIGTERM)
    finally:
        # From here on (exit, atexit callbacks) SIGTERM ends the process the default way: raising
        # _Terminated in an atexit callback would print "Exception ignored" and a traceback.
        if handling:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run(argv: Sequence[str] | None) -> None:
    """The command; every outcome ends in ``sys.exit`` with its exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="lfsreg", standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt (and so _Terminated) into Abort
        if isinstance(exc.__cause__, _Terminated):
            click.echo("lfsreg: terminated", err=True)
            sys.exit(128 + signal.SIGTERM)
        click.echo("lfsreg: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "lfsreg"
        click.echo(f"lfsreg: error: {exc.format_message()}", err=True)
        click.echo(f"hint: see '{command} --help'", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"lfsreg: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_FAILURE)
    except LfsregError as exc:
        click.echo(f"lfsreg: error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except _Terminated:
        click.echo("lfsreg: terminated", err=True)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        click.echo("lfsreg: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"lfsreg: error: {str(exc.filename) + ': ' if exc.filename else ''}{exc.strerror or exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except Exception as exc:  # a bug: one line by default, the traceback with -v
        logging.getLogger("lfsreg").debug("internal error", exc_info=True)
        click.echo(f"lfsreg: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run again with -v for details, and report it", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)
