"""Longest test modules first on every xdist worker (a pytest plugin, loaded by conftest).

Under ``--dist worksteal`` (tools/test.sh) xdist deals the collected items out in one round of
contiguous chunks, one per worker, in collection order (alphabetical files); a worker runs
its chunk from the front and an idle worker steals the back half of the longest queue. So a
long module late in the alphabet (the stock git-lfs SSH tests, ~20 s) started near the end of
the run and the other workers sat idle waiting for it (~10 s of a run's tail). Here the long
modules (``SECONDS``) are dealt out first, longest first, each to the chunk with the least
work so far (LPT), whole (a module's tests stay on one worker, so a module- or session-scoped
peer is not started on more workers than before), at the front of its chunk; the rest follow
in collection order, filling each chunk to the size xdist will cut it at. Every worker
computes the same order (xdist checks that they agree). Nothing changes without xdist or
with another ``--dist``.

``SECONDS``: wall seconds of each module's tests summed, from a full run's per-test times
(tools/test.sh with LFSREG_COVERAGE=0, 5 workers: relative sizes are what matter), those of 2.5 s or more
whose tests take 0.15 s or more on average (modules of many short tests balance well where
they are). A module missing here stays in place; a renamed one is simply not moved. Refresh it when a module becomes one of
the long ones: ``pytest --durations=0`` and sum per file.
"""

from __future__ import annotations

import os

import pytest

SECONDS = {
    "test_stalls": 55,
    "test_bench_tools": 39,
    "test_cut_connections": 16,
    "test_kill_push": 15,
    "test_lfs_transfer_connection_faults": 13,
    "test_ssh": 13,
    "test_lfs_hostile_server": 12,
    "test_smart_http_deadline": 9,
    "test_bounded_walks": 9,
    "test_remote_concurrency": 8,
    "test_ssh_transfer_server_stock_git_lfs": 8,
    "test_chunked_layers": 8,
    "test_concurrency": 7,
    "test_fault_lfs_server": 7,
    "test_ssh_cut_handshake": 7,
    "test_s3_serve": 7,
    "test_ssh_transfer_read_timeout": 7,
    "test_git_push_recheck": 6,
    "test_git_durability": 6,
    "test_interop_git": 6,
    "test_partial_fetch": 6,
    "test_forced_races": 5,
    "test_ssh_exec_failures": 5,
    "test_fuzz_formats": 5,
    "test_ssh_scutiger": 5,
    "test_git_http_errors": 4,
    "test_fuzz_lfs_parsers": 4,
    "test_docker_transport": 4,
    "test_ssh_transfer_queue": 4,
    "test_serve_conformance_push": 4,
    "test_verify_gc_ssh": 4,
    "test_missing_prerequisites": 4,
    "test_disk_full": 4,
    "test_serve_remote": 4,
    "test_git_transport_failures": 4,
    "test_registry_branch": 4,
    "test_bench_zstd": 3,
    "test_no_binaries": 3,
    "test_kill_staging": 3,
    "test_progress_lines": 3,
    "test_usage_meters": 3,
    "test_serve_write_api": 3,
    "test_bench_verify": 3,
    "test_engine": 3,
    "test_https": 3,
    "test_fuzz_records": 3,
    "test_s3_lfs": 3,
}

#: Long modules whose tests mostly wait (a stall held until a timeout, a deadline, a retry's
#: back-off, a process killed at a moment): under 10 % of their wall time is CPU, in the
#: processes they start too (a full run's per-test user+sys of the worker and its children).
WAITING = {
    "test_stalls",
    "test_kill_push",
    "test_lfs_transfer_connection_faults",
    "test_lfs_hostile_server",
    "test_smart_http_deadline",
    "test_ssh_transfer_server_stock_git_lfs",
    "test_ssh_cut_handshake",
    "test_ssh_transfer_read_timeout",
    "test_git_push_recheck",
    "test_ssh_exec_failures",
    "test_git_http_errors",
    "test_ssh_transfer_queue",
    "test_git_transport_failures",
    "test_usage_meters",
}


def chunk_sizes(count: int, workers: int) -> list[int]:
    """How xdist's worksteal scheduler cuts ``count`` items into its first round of chunks."""
    sizes = []
    for i in range(workers):
        size = count // (workers - i)
        sizes.append(size)
        count -= size
    return sizes


def waiting_lanes(workers: int) -> int:
    """How many chunks take the waiting modules: the workers beyond one per core and one spare."""
    return max(0, min(2, workers - (os.cpu_count() or 1) - 1))


def longest_first(items: list, workers: int) -> list:
    """``items`` reordered: long modules at the fronts of the ``workers`` chunks, LPT-balanced.

    The :data:`WAITING` modules go to the first :func:`waiting_lanes` chunks, the other long ones
    to the rest: dealt by length alone, the longest modules (most of them waiting) all started
    together, and for the run's first minute the workers mostly waited while a core sat idle
    (~25 core-seconds of a 5-worker run). Kept apart, the waiting lanes sleep while the others
    keep both cores busy. Without lanes (few workers) every long module is dealt to any chunk.
    """
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    stem = {name: name.rsplit("/", 1)[-1].removesuffix(".py") for name in modules}
    weight = {name: SECONDS.get(stem[name], 0.0) for name in modules}
    long = sorted((name for name in modules if weight[name]), key=lambda n: -weight[n])
    sizes = chunk_sizes(len(items), workers)
    load = [0.0] * workers
    fronts: list[list] = [[] for _ in range(workers)]
    moved = set()
    lanes = waiting_lanes(workers)
    for name in long:  # each to the least loaded chunk of its kind that still has room for all its tests
        fits = [k for k in range(workers) if len(fronts[k]) + len(modules[name]) <= sizes[k]]
        kind = [k for k in fits if (k < lanes) == (stem[name] in WAITING)] if lanes else fits
        room = kind or fits
        if room:
            k = min(room, key=lambda i: load[i])
            load[k] += weight[name]
            fronts[k] += modules[name]
            moved.add(name)
    rest = [item for name, its in modules.items() if name not in moved for item in its]
    ordered: list = []
    for k, size in enumerate(sizes):
        take = size - len(fronts[k])
        ordered += fronts[k] + rest[:take]
        del rest[:take]
    return ordered


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    workerinput = getattr(config, "workerinput", None)  # only on an xdist worker (where option.dist is "no")
    if workerinput is None or workerinput["workercount"] < 2:
        return
    if any("worksteal" in arg for arg in workerinput.get("mainargv", ())):  # the controller's --dist
        items[:] = longest_first(items, workerinput["workercount"])
