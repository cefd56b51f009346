"""Small commands on a local registry import only the code they run (issue 8: benchmarks no worse).

Every command is a new process, so what it imports is paid on every run: ``lfsreg init`` or a
push that finds every layer present must not load the push and pull pipelines, the image
transports or describe code they do not use, nor the git client of remotes (``dulwich.client``
and its HTTP stack): together about 25 ms a command, more without cached bytecode.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import sample

# Runs the CLI in a fresh interpreter and prints the modules it loaded.
RUN = """
import sys
from lfsreg.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("EXIT", code, " ".join(sorted(sys.modules)))
"""

REMOTE_GIT = ("dulwich.client", "lfsreg.git.remote", "lfsreg.git.transport", "lfsreg.lfs.filestore", "urllib3", "requests")
IMAGE_CODE = ("lfsreg.ops.push", "lfsreg.ops.pull", "lfsreg.ops.history", "lfsreg.transports", "lfsreg.layers", "lfsreg.describe")


def _modules(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=True).stdout
    line = out.splitlines()[-1]
    assert line.startswith("EXIT 0 "), out
    return set(line.split()[2:])


def test_init_loads_no_image_or_remote_code(tmp_path):
    loaded = _modules("init", str(tmp_path / "reg.git"))
    assert not loaded & {*REMOTE_GIT, *IMAGE_CODE}, sorted(loaded & {*REMOTE_GIT, *IMAGE_CODE})


def test_tags_loads_no_image_or_remote_code(populated):
    loaded = _modules("tags", str(populated), "acme/app")
    assert not loaded & {*REMOTE_GIT, *IMAGE_CODE}, sorted(loaded & {*REMOTE_GIT, *IMAGE_CODE})


def test_local_push_of_present_layers_loads_no_pull_or_remote_code(populated):
    source = f"oci:{sample('fixtures', 'app.oci')}:1.0"
    loaded = _modules("push", str(populated), source, "--tag", "acme/app:1.0")
    unused = {*REMOTE_GIT, "lfsreg.ops.pull", "lfsreg.describe"}
    assert not loaded & unused, sorted(loaded & unused)
