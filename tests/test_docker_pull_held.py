"""``lfsreg pull ... -o docker://``: blobs the destination registry holds are not read from LFS (issue 11).

The destination is asked first (``HEAD`` per blob, before any LFS object is fetched or opened);
a blob it holds gets one ``PRESENT`` progress event and is neither downloaded nor uploaded.
Shown with an HTTP registry (git http-backend + giftless) and an empty cache for each pull: the
second pull of the same image downloads nothing from the host (before, every layer was
downloaded into the cache first, then not sent). The first pull reports its layers' bytes.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from gitenv import cli_env
from imageverify import FIXTURES
from peers import DistributionServer

import lfsreg
from lfsreg.api import Traffic
from lfsreg.progress import DONE, PRESENT, TRANSFERRING, ProgressEvent

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop


def _pull(url: str, dest: str, cache: Path, monkeypatch) -> tuple[list[ProgressEvent], Traffic]:
    monkeypatch.setenv("LFSREG_CACHE", str(cache))
    events: list[ProgressEvent] = []
    traffic = Traffic()
    with lfsreg.Registry(url) as reg:
        reg.pull(["acme/multi:1.0"], dest, progress=events.append, traffic=traffic)
    return events, traffic


def test_held_blobs_are_not_downloaded(
    distribution_registry: DistributionServer, git_http_server, git_http_repo, tmp_path: Path, monkeypatch
) -> None:
    env = {**cli_env(tmp_path), "LFSREG_USERNAME": git_http_server.user, "LFSREG_PASSWORD": git_http_server.password}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with lfsreg.Registry(git_http_repo.url) as reg:
        reg.push([f"oci:{FIXTURES / 'multi.oci'}:1.0"], tags=["acme/multi:1.0"])
    first, traffic = _pull(git_http_repo.url, distribution_registry.ref("lfsreg/held", "1"), tmp_path / "cache1", monkeypatch)
    phases = collections.Counter(e.phase for e in first if e.action == "pull")
    assert phases[TRANSFERRING] and phases[DONE] and not phases[PRESENT]
    assert traffic.from_host > 0
    again, traffic = _pull(git_http_repo.url, distribution_registry.ref("lfsreg/held", "2"), tmp_path / "cache2", monkeypatch)
    assert traffic.from_host == 0
    present = {e.key for e in again if e.phase == PRESENT}
    assert present == {e.key for e in first if e.phase == DONE and e.action == "pull"}
    assert all(e.phase == PRESENT for e in again)
    uploads = [line for line in distribution_registry.access_log() if '"POST /v2/lfsreg/held/blobs/uploads/' in line]
    assert len(uploads) == len(present) + 2  # the first pull's layers and two configs; none by the second
