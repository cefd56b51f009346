"""The bench times lfsreg as installed: every revision it measures runs from compiled bytecode.

Without it each command also timed the compiling of its modules, for the snapshots of other
revisions always and for the working tree only when no test run had left bytecode in it: the
side-by-side ratios of small commands (init, a push that finds everything present) measured
that accident, not lfsreg.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.bench import revs  # noqa: E402


def test_every_measured_lfsreg_has_its_bytecode(tmp_path):
    measured = revs.prepare(f"{shlex.quote(sys.executable)} -m lfsreg", ["HEAD"], tmp_path)
    assert [lr.name for lr in measured] == ["work", "HEAD"]
    tag = sys.implementation.cache_tag
    for lr in measured:
        for module in ("api", "ops/push", "staging"):
            source = lr.source / "lfsreg" / f"{module}.py"
            pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            assert pyc.is_file(), f"{lr.name}: no bytecode for {source}"
