"""The order tests/longest_first.py deals the suite in: a permutation, long modules at the chunks' fronts, waiting ones apart."""

from __future__ import annotations

from dataclasses import dataclass

import longest_first
import pytest
from longest_first import WAITING, chunk_sizes


@dataclass(frozen=True)
class Item:
    nodeid: str


def suite() -> list[Item]:
    names = ["test_a", "test_bench_tools", "test_stalls", "test_kill_push", "test_ssh", "test_z", "test_cut_connections"]
    return [Item(f"tests/{name}.py::t{i}") for name in names for i in range(12)]


def chunks(items: list[Item], workers: int) -> list[list[Item]]:
    out, start = [], 0
    for size in chunk_sizes(len(items), workers):
        out.append(items[start : start + size])
        start += size
    return out


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_the_deal_is_a_permutation_with_modules_whole(monkeypatch, cores):
    monkeypatch.setattr(longest_first.os, "cpu_count", lambda: cores)
    items = suite()
    ordered = longest_first.longest_first(items, 5)
    assert sorted(i.nodeid for i in ordered) == sorted(i.nodeid for i in items)
    for chunk in chunks(ordered, 5):  # a long module is never split between workers
        for name in ("test_stalls", "test_bench_tools", "test_kill_push"):
            inside = [i for i in chunk if f"/{name}.py" in i.nodeid]
            assert len(inside) in (0, 12), (name, len(inside))


def test_waiting_modules_get_lanes_of_their_own(monkeypatch):
    monkeypatch.setattr(longest_first.os, "cpu_count", lambda: 2)
    assert longest_first.waiting_lanes(5) == 2
    ordered = longest_first.longest_first(suite(), 5)
    parts = chunks(ordered, 5)
    fronts = [{i.nodeid.split("::")[0].rsplit("/", 1)[-1][:-3] for i in part[:12]} for part in parts]
    waiting = [k for k, front in enumerate(fronts) if front & WAITING]
    busy = [k for k, front in enumerate(fronts) if front & {"test_bench_tools", "test_ssh", "test_cut_connections"}]
    assert waiting and set(waiting) <= {0, 1}, fronts
    assert busy and not set(busy) & {0, 1}, fronts
    assert parts[0][0].nodeid.startswith("tests/test_stalls.py")  # the longest first
