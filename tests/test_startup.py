"""Start-up stays light: the CLI imports a system's client library only when that system is used.

``lfsreg images /local/path`` must not pay for requests, urllib3, paramiko (HTTP and SSH
remotes) or rich (progress on a terminal); each adds tens of milliseconds to every command.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("requests", "urllib3", "paramiko", "rich")


@pytest.mark.parametrize("module", ["lfsreg", "lfsreg.cli"])
def test_import_loads_no_remote_or_terminal_client(module):
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loads {out}"
