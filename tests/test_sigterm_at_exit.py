"""SIGTERM after the command finished (exit, atexit callbacks) ends the process quietly.

The CLI turns SIGTERM into an orderly unwind while a command runs. Once it has finished, the
signal must end the process the default way: raising in an atexit callback (coverage saving its
data, a thread pool joining its workers) printed "Exception ignored in atexit callback" and a
traceback of ``lfsreg.cli._Terminated``.
"""

from __future__ import annotations

import signal
import subprocess
import sys

# An atexit callback registered before the CLI runs, so it runs after the command: it sends
# this process SIGTERM, as a `timeout` or a cancelled CI job might at that moment.
AT_EXIT = """
import atexit, os, signal, sys
atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), print("still here", file=sys.stderr)))
from lfsreg.cli import main
main(sys.argv[1:])
"""


def test_sigterm_during_atexit_is_the_default_action(registry):
    proc = subprocess.run(
        [sys.executable, "-c", AT_EXIT, "images", str(registry)], capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stderr)
    assert proc.stdout.startswith("REPOSITORY"), proc.stdout  # the command itself completed


def test_sigterm_during_the_command_still_unwinds(registry):
    """The handler is in place while the command runs: SIGTERM then means exit 143 and one line."""
    code = (
        "import os, signal\nfrom lfsreg.cli import main, cli\n"
        "@cli.command()\ndef die():\n    os.kill(os.getpid(), signal.SIGTERM)\n"
        "main(['die'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (proc.returncode, proc.stderr.strip()) == (128 + signal.SIGTERM, "lfsreg: terminated")
