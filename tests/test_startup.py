"""Start-up stays light: the CLI imports a system's client library only when that system is used.

``lfsreg images /local/path`` must not pay for requests, urllib3, paramiko (HTTP and SSH
remotes) or rich (progress on a terminal); each adds tens of milliseconds to every command.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("requests", "urllib3", "paramiko", "rich", "dulwich", "cryptography")


@pytest.mark.parametrize("module", ["lfsreg", "lfsreg.cli"])
def test_import_loads_no_remote_or_terminal_client(module):
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loads {out}"


def test_public_names_are_there_when_asked_for():
    """The package imports its API lazily; every name in ``__all__`` still resolves, to the API's own object."""
    code = (
        "import lfsreg, lfsreg.api as api\n"
        "for name in lfsreg.__all__: getattr(lfsreg, name)\n"
        "assert lfsreg.Registry is api.Registry and lfsreg.COMPRESSION_ALGORITHMS == api.COMPRESSION_ALGORITHMS\n"
        "try: lfsreg.no_such_name\n"
        "except AttributeError as e: print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "module 'lfsreg' has no attribute 'no_such_name'"
