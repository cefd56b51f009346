#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs what the tests need
# (Debian peers, the package with its test extras), then runs pytest.  Idempotent.
# usage: tools/test.sh [PYTEST_ARGS...]   (env: LFSREG_TEST_WORKERS, LFSREG_COVERAGE, LFSREG_COVERAGE_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-test-deps.sh
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check lfsreg tests tools
python3 -m ruff format --check lfsreg tests tools
python3 -m mypy  # the lfsreg package, settings in pyproject.toml [tool.mypy]
# pytest on every core (pytest-xdist; LFSREG_TEST_WORKERS=0 runs in one process, or pass -n N),
# under coverage: branch coverage of lfsreg in the pytest processes and in every Python process
# they start (pyproject.toml [tool.coverage.run]: patch = subprocess), combined and summed up
# per package at the end. LFSREG_COVERAGE=0 runs without it.
COVERAGE_DIR=${LFSREG_COVERAGE_DIR:-$PWD/.coverage-data}
if [ "${LFSREG_COVERAGE:-1}" = 0 ]; then
  RUN=(python3 -m pytest)
else
  rm -rf "$COVERAGE_DIR"
  mkdir -p "$COVERAGE_DIR"
  export COVERAGE_FILE=$COVERAGE_DIR/data  # absolute: tests run processes in other directories
  RUN=(python3 -m coverage run -m pytest)
fi
set +e
"${RUN[@]}" -n "${LFSREG_TEST_WORKERS:-auto}" "$@"
rc=$?
set -e
if [ "${LFSREG_COVERAGE:-1}" != 0 ]; then
  python3 -m coverage combine -q
  # only this checkout's lfsreg: tools/bench runs other revisions from temporary copies
  python3 -m coverage json -q --include="$PWD/lfsreg/*" -o "$COVERAGE_DIR/coverage.json"
  python3 tools/coverage_summary.py "$COVERAGE_DIR/coverage.json"
fi
# pytest exits 5 when it collected nothing: that is a failure, not a pass.
[ "$rc" -eq 5 ] && { echo "no tests collected" >&2; exit 1; }
exit "$rc"
