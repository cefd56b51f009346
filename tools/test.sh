#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs what the tests need
# (Debian peers, the package with its test extras), then runs pytest.  Idempotent.
# usage: tools/test.sh [PYTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-test-deps.sh
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check lfsreg tests tools
python3 -m ruff format --check lfsreg tests tools
python3 -m mypy  # the lfsreg package, settings in pyproject.toml [tool.mypy]
set +e
python3 -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure, not a pass.
[ "$rc" -eq 5 ] && { echo "no tests collected" >&2; exit 1; }
exit "$rc"
