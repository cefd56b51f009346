#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs what the tests need
# (Debian peers, the package with its test extras), then runs pytest.  Idempotent.
# usage: tools/test.sh [PYTEST_ARGS...]   (env: LFSREG_TEST_WORKERS, LFSREG_COVERAGE, LFSREG_COVERAGE_DIR,
#                                          LFSREG_TEST_TMP)
# Ends with the wall and CPU time of each phase (CPU: user+sys of the phase's processes and
# of every process they waited for, i.e. the peers and CLI runs of the tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
# Byte-code caches on: lfsreg's modules are imported by hundreds of CLI processes, and pytest
# rewrites the asserts of every test module in every worker; with PYTHONDONTWRITEBYTECODE set
# (some environments do) each of them compiles it all again (~2 s CPU per worker, ~30 ms per
# CLI process). The caches go to the ignored __pycache__/ directories.
unset PYTHONDONTWRITEBYTECODE

PHASES_FILE=$(mktemp)
trap 'rm -f "$PHASES_FILE"' EXIT
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
children_cpu() {  # children_cpu PID: CPU ticks of shell PID's waited-for children so far (cutime + cstime), 0 without /proc
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  set -- ${stat##*) }  # fields from 3 (state) on: cutime and cstime are fields 16 and 17
  echo $((${14} + ${15}))
}
phase() {  # phase NAME COMMAND...: run it, note its wall and CPU time; its exit status is returned
  local name=$1 t0 c0 rc=0 shell=$BASHPID # this shell, or the background subshell running the phase
  shift
  t0=$(date +%s%N) c0=$(children_cpu "$shell")
  "$@" || rc=$?
  printf '%-9s %7.1f s wall %7.1f s CPU\n' "$name" \
    "$(awk "BEGIN{print ($(date +%s%N) - $t0) / 1e9}")" "$(awk "BEGIN{print ($(children_cpu "$shell") - $c0) / $TICKS}")" >>"$PHASES_FILE"
  return "$rc"
}
# warm: compile what every pytest process loads, once, before the workers start. In a fresh
# checkout there are no byte-code caches yet, and each xdist worker would compile all of it
# at the same moment: pytest's assert rewriting of every test module and lfsreg's modules
# (conftest imports them all), ~3 s CPU per worker (collection: 4.5 s CPU per worker cold,
# 1.5 s warm). A collection in one process writes those caches (the __pycache__ directories;
# pytest's rewritten modules are named *-pytest-VERSION.pyc). Its output and status do not
# matter: the real run collects again and reports any error.
warm() {
  python3 -m pytest --collect-only -q -p no:xdist -p no:cacheprovider >/dev/null 2>&1 || true
  python3 -m compileall -q tools >/dev/null 2>&1 || true # the benchmarks the tests run (python -m tools.bench)
}

phase deps tools/install-test-deps.sh
# The checks before pytest need nothing from each other, so they run at once (one core each
# is all any of them uses): the editable install, ruff, mypy, and the cache warm-up (it reads
# lfsreg from this checkout, which `python3 -m` puts first on sys.path, install or not).
# Any failure stops the run before pytest, as one after the other did.
pids=()
phase install tools/install-package.sh & pids+=($!)
{ phase ruff python3 -m ruff check lfsreg tests tools && phase format python3 -m ruff format --check lfsreg tests tools; } & pids+=($!)
phase mypy python3 -m mypy & pids+=($!) # the lfsreg package, settings in pyproject.toml [tool.mypy]
phase warm warm & pids+=($!)
prep_rc=0
for pid in "${pids[@]}"; do wait "$pid" || prep_rc=$?; done
if [ "$prep_rc" -ne 0 ]; then
  echo "test.sh phases:"; sed 's/^/  /' "$PHASES_FILE"
  exit "$prep_rc"
fi
# pytest on every core (pytest-xdist; LFSREG_TEST_WORKERS=N workers, 0 runs in one process),
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
# Two workers per core, plus one: many tests wait on a peer or a timeout (a stall timed out, a
# process killed mid-push, a server's answer), and the other workers' CPU work fills those waits.
# Measured on 2 quiet cores (whole command, 1,812 tests): 3 workers 163 s, 5 workers 132 s,
# 6 workers 135 s. worksteal: a worker that is done takes queued tests from a busy one.
WORKERS=${LFSREG_TEST_WORKERS:-$((2 * $(nproc) + 1))}
# The tests' files (repositories, registries, caches, peers' data: ~1.3 GB for a whole run) go to
# a RAM file system when one has room: on a disk every git object, rename, fsync and the final
# clean-up is file-system work (measured: ~20 % of the tests' CPU, and deleting a run's files
# took minutes of wall time on an ext4 mounted with `discard`). TMPDIR goes with it, so what the
# tests do with tempfile stays on the same file system as their tmp_path. Its path is kept short:
# with a 33-character TMPDIR stock git-lfs's pure-SSH transfer failed over to git-lfs-authenticate
# (with 24 it works; likely its ssh control socket there, a socket path has at most 107 bytes).
# LFSREG_TEST_TMP=DIR names the parent directory (short, too); without room (e.g. a container's
# 64 MB /dev/shm) the default (pytest's numbered directories under the system's temporary
# directory) is kept.
TEST_TMP=
pick_test_tmp() {  # a directory for this run on a tmpfs with >= 4 GiB free, and 4 GiB of memory to back it
  local parent=${LFSREG_TEST_TMP:-/dev/shm} avail mem
  [ -d "$parent" ] && [ -w "$parent" ] || return 0
  if [ -z "${LFSREG_TEST_TMP:-}" ]; then
    avail=$(df -Pk "$parent" 2>/dev/null | awk 'NR==2{print $4}')
    mem=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo 2>/dev/null)
    [ "${avail:-0}" -ge 4194304 ] && [ "${mem:-0}" -ge 4194304 ] || return 0
  fi
  TEST_TMP=$(mktemp -d "$parent/lfsreg.XXXXXX")
}
pick_test_tmp
TMP_ARGS=()
if [ -n "$TEST_TMP" ]; then
  mkdir "$TEST_TMP/t"
  export TMPDIR=$TEST_TMP/t
  TMP_ARGS=(--basetemp "$TEST_TMP/pytest")
fi
rc=0
phase pytest "${RUN[@]}" -n "$WORKERS" --dist worksteal "${TMP_ARGS[@]}" "$@" || rc=$?
if [ -n "$TEST_TMP" ]; then  # a passed run's files go (RAM); a failed run's stay for a look
  if [ "$rc" -eq 0 ]; then rm -rf "$TEST_TMP"; else echo "test files kept in $TEST_TMP (a RAM file system: rm -rf it when done)"; fi
fi
if [ "${LFSREG_COVERAGE:-1}" != 0 ]; then
  report() {  # one chain: set -e does not apply inside a function called from `phase`
    python3 tools/coverage_torn.py "$COVERAGE_DIR" &&
      python3 -m coverage combine -q &&
      # only this checkout's lfsreg: tools/bench runs other revisions from temporary copies
      python3 -m coverage json -q --include="$PWD/lfsreg/*" -o "$COVERAGE_DIR/coverage.json" &&
      python3 tools/coverage_summary.py "$COVERAGE_DIR/coverage.json"
  }
  phase coverage report
fi
echo "test.sh phases:"
sed 's/^/  /' "$PHASES_FILE"
# pytest exits 5 when it collected nothing: that is a failure, not a pass.
[ "$rc" -eq 5 ] && { echo "no tests collected" >&2; exit 1; }
exit "$rc"
