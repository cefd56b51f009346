"""The python-only PATH of the no-binaries tests runs the lfsreg under test, from any directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import python_only_path

CHECKOUT = Path(__file__).resolve().parents[1]
PROBE = "import json, dulwich, lfsreg, shutil, sys; print(json.dumps([lfsreg.__file__, sys.prefix, shutil.which('python')]))"


def test_python_only_path_imports_the_lfsreg_under_test_from_any_cwd(tmp_path):
    import json

    python = python_only_path(tmp_path)
    assert sorted(p.name for p in python.parent.iterdir()) == ["python"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (elsewhere, Path("/")):
        proc = subprocess.run(
            [str(python), "-c", PROBE],
            cwd=cwd,
            env={"PATH": str(python.parent), "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        module, _prefix, found = json.loads(proc.stdout)
        assert Path(module).resolve() == CHECKOUT / "lfsreg" / "__init__.py", f"from cwd {cwd}: {module}"
        assert found == str(python)
