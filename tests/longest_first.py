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
(tools/test.sh, 5 workers, load 3-6: relative sizes are what matter), those of 2.5 s or more
whose tests take 0.15 s or more on average (modules of many short tests balance well where
they are). A module missing here stays in place; a renamed one is simply not moved. Refresh it when a module becomes one of
the long ones: ``pytest --durations=0`` and sum per file.
"""

from __future__ import annotations

import pytest

SECONDS = {
    "test_stalls": 58,
    "test_bench_tools": 35,
    "test_kill_push": 28,
    "test_cut_connections": 22,
    "test_ssh": 20,
    "test_ssh_transfer_server_stock_git_lfs": 19,
    "test_ssh_scutiger": 15,
    "test_lfs_transfer_connection_faults": 13,
    "test_lfs_hostile_server": 12,
    "test_ssh_transfer_read_timeout": 12,
    "test_verify_gc_ssh": 12,
    "test_remote_concurrency": 11,
    "test_kill_staging": 10,
    "test_tls_e2e": 10,
    "test_smart_http_deadline": 10,
    "test_concurrency": 9,
    "test_git_durability": 9,
    "test_partial_fetch": 9,
    "test_fault_lfs_server": 9,
    "test_ssh_cut_handshake": 8,
    "test_fuzz_archives": 8,
    "test_git_push_recheck": 7,
    "test_ssh_exec_failures": 7,
    "test_s3_serve": 6,
    "test_lfs_client": 6,
    "test_https": 6,
    "test_serve_remote": 5,
    "test_serve_conformance_push": 3,
    "test_fuzz_formats": 5,
    "test_forced_races": 5,
    "test_ssh_transfer_queue": 4,
    "test_git_transport_failures": 4,
    "test_missing_prerequisites": 4,
    "test_docker_transport": 4,
    "test_git_http_errors": 4,
    "test_serve_read_api": 4,
    "test_mirror_fetch_race": 4,
    "test_lfs_batch_ref": 4,
    "test_bench_zstd": 4,
    "test_cli_runner": 4,
    "test_no_binaries": 4,
    "test_serve_write_api": 4,
    "test_engine": 4,
    "test_tls_env": 3,
    "test_disk_full": 3,
    "test_serve_cli_auth": 3,
    "test_interop_git": 3,
    "test_git_retries": 3,
    "test_sign_cosign": 3,
    "test_s3_lfs": 3,
    "test_usage_meters": 3,
    "test_fuzz_records": 3,
    "test_progress_lines": 3,
    "test_verify": 3,
    "test_prune_gc": 3,
    "test_serve_clients": 3,
    "test_ssh_channel_stall": 3,
    "test_fuzz_lfs_parsers": 3,
    "test_transfer_limit": 3,
}


def chunk_sizes(count: int, workers: int) -> list[int]:
    """How xdist's worksteal scheduler cuts ``count`` items into its first round of chunks."""
    sizes = []
    for i in range(workers):
        size = count // (workers - i)
        sizes.append(size)
        count -= size
    return sizes


def longest_first(items: list, workers: int) -> list:
    """``items`` reordered: long modules at the fronts of the ``workers`` chunks, LPT-balanced."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    weight = {name: SECONDS.get(name.rsplit("/", 1)[-1].removesuffix(".py"), 0.0) for name in modules}
    long = sorted((name for name in modules if weight[name]), key=lambda n: -weight[n])
    sizes = chunk_sizes(len(items), workers)
    load = [0.0] * workers
    fronts: list[list] = [[] for _ in range(workers)]
    moved = set()
    for name in long:  # each to the least loaded chunk that still has room for all its tests
        room = [k for k in range(workers) if len(fronts[k]) + len(modules[name]) <= sizes[k]]
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
