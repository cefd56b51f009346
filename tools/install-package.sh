#!/usr/bin/env bash
# `pip install -e '.[test]'` for tools/test.sh, skipped when it would change nothing (~3 s saved
# per run): this checkout is the installed lfsreg (editable), every requirement of the package
# and of its test extras is installed, and pyproject.toml is the one the last install used.
# Anything else (another checkout installed, a package missing, pyproject.toml edited, no
# tomllib before Python 3.11) runs pip as before.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP_DIR=$(python3 -c 'import sys; print(sys.prefix)')
STAMP=$STAMP_DIR/.lfsreg-test-install-$(printf '%s' "$PWD" | sha256sum | cut -c1-16)
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed() {  # the stamp matches and the environment still holds what it promised
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] || return 1
  python3 -I - "$PWD" <<'PY'
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

root = Path(sys.argv[1])
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
import lfsreg  # noqa: E402  the checkout's package, not another copy

if Path(lfsreg.__file__).resolve().parent != root / "lfsreg":
    sys.exit(1)
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
    md.version(name)  # raises PackageNotFoundError: exit 1
PY
}
if installed 2>/dev/null; then
  exit 0
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
printf '%s\n' "$want" >"$STAMP" 2>/dev/null || true  # an unwritable prefix only costs the next run pip's ~3 s
