"""lfsreg/ops/halves.py: half of a read-only walk in a forked child, the same answers either way.

``verify`` hands the reads of its fast path to :func:`in_halves` (on two cores, with no other
thread); here the fork is forced (a test process runs threads) and compared with no fork: the
answers, a child that fails (its half is done again by the parent), and a whole ``verify``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import fixture, run_cli
from gitenv import cli_env
from hostile import edit_registry

import lfsreg
from lfsreg.ops import halves
from lfsreg.registry import layout


@pytest.fixture
def forking(monkeypatch):
    monkeypatch.setattr(halves, "can_fork", lambda: True)
    monkeypatch.setattr(halves, "MIN_ITEMS", 1)


def _square(items: list[int]) -> dict[int, tuple[int, int]]:
    return {i: (i * i, os.getpid()) for i in items}


def test_the_second_half_comes_from_a_child(forking):
    first, second = halves.in_halves(_square, list(range(10)))
    assert {k: v[0] for k, v in {**first, **second}.items()} == {i: i * i for i in range(10)}
    assert {pid for _, pid in first.values()} == {os.getpid()}
    assert {pid for _, pid in second.values()} != {os.getpid()}  # computed in another process


def test_a_child_that_fails_leaves_its_half_to_the_parent(forking):
    parent = os.getpid()

    def fragile(items: list[int]) -> dict[int, int]:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return {i: -i for i in items}

    first, second = halves.in_halves(fragile, list(range(6)))
    assert {**first, **second} == {i: -i for i in range(6)}


def test_short_lists_and_unsafe_processes_are_not_split(monkeypatch):
    assert len(halves.in_halves(_square, [1, 2])) == 1  # below MIN_ITEMS: one answer, for all of them
    monkeypatch.setattr(halves, "MIN_ITEMS", 1)
    monkeypatch.setattr(halves, "_cores", lambda: 2)
    monkeypatch.setattr(halves.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(halves.threading, "active_count", lambda: 1)
    assert halves.can_fork()  # a free core, one thread
    monkeypatch.setenv("LFSREG_FORK", "0")
    assert not halves.can_fork()  # an embedding program said no
    monkeypatch.delenv("LFSREG_FORK")
    monkeypatch.setattr(halves.os, "getloadavg", lambda: (1.5, 0.5, 0.5))
    assert halves.can_fork()  # this command run again and again: about one of the load
    monkeypatch.setattr(halves.os, "getloadavg", lambda: (2.5, 0.5, 0.5))
    assert not halves.can_fork()  # both cores busy: a child would only add its cost
    monkeypatch.setattr(halves.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(halves.threading, "active_count", lambda: 2)  # another thread: no fork
    assert not halves.can_fork() and len(halves.in_halves(_square, list(range(10)))) == 1


def test_verify_with_a_child_reports_what_it_reports_alone(tmp_path: Path, monkeypatch):
    repo = tmp_path / "reg.git"
    env = cli_env(tmp_path)
    for image in ("app.docker.tar", "tool.docker.tar"):
        proc = run_cli("push", repo, "docker-archive:" + str(fixture(image)), env=env)
        assert proc.returncode == 0, proc.stderr
    gone = next(p for p in (repo / "lfs" / "objects").rglob("*") if p.is_file())
    gone.unlink()  # one problem for the probe after the walk...
    edit_registry(repo, {f"{layout.NEW.tags_dir('acme/tool')}/junk": b"not a digest\n"}, tmp_path)  # ...one in the child's half of the tags

    def report() -> tuple[list[str], int, int]:
        reg = lfsreg.Registry(str(repo))
        try:
            r = reg.verify()
        finally:
            reg.close()
        return [str(p) for p in r.problems], r.blobs, r.objects

    alone = report()
    monkeypatch.setattr(halves, "can_fork", lambda: True)
    monkeypatch.setattr(halves, "MIN_ITEMS", 1)
    assert report() == alone and len(alone[0]) == 2


def test_du_with_a_child_counts_what_it_counts_alone(tmp_path: Path, monkeypatch):
    repo = tmp_path / "reg.git"
    env = cli_env(tmp_path)
    for image in ("app.docker.tar", "tool.docker.tar"):
        assert run_cli("push", repo, "docker-archive:" + str(fixture(image)), env=env).returncode == 0
    edit_registry(repo, {f"{layout.NEW.tags_dir('acme/tool')}/junk": b"not a digest\n"}, tmp_path)  # in the child's half

    def usage(cache: str) -> tuple:
        monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / cache))  # a cold walk each time: no memo
        reg = lfsreg.Registry(str(repo))
        try:
            u = reg.du()
        finally:
            reg.close()
        return [(t.name, t.tag, t.size, t.unique, t.objects) for t in u.tags], u.live_bytes, u.history_bytes, u.unreadable

    alone = usage("alone")
    monkeypatch.setattr(halves, "can_fork", lambda: True)
    monkeypatch.setattr(halves, "MIN_ITEMS", 1)
    assert usage("forked") == alone and len(alone[0]) == 1 and len(alone[3]) == 1
