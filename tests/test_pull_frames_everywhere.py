"""Every pull output decodes a zstd layer's frames on the pool (issue 13 item 3).

A docker-archive gets plain layers (``FrameReader`` under the writer); an OCI layout or archive
gets the stored bytes while a ``DiffIdCheck`` decodes them on the side, which used to decode
them in order on one thread. Now both decode whole frames on ``lfsreg-unzstd`` threads. Frames
are shrunk to 64 KiB so that a small layer has several.
"""

from __future__ import annotations

import hashlib
import tarfile
import threading
from pathlib import Path

import pytest
import test_zstd_frames
from conftest import run_cli
from gitenv import cli_env
from test_zstd_frames import FRAME, _pool_gone
from test_zstd_pipeline import _archive, _layer

from lfsreg import pipeline

small_frames = test_zstd_frames.small_frames  # autouse: frames of FRAME bytes
decoded_on_pool = test_zstd_frames.decoded_on_pool


def _blobs(out: Path, kind: str) -> set[str]:
    """The sha256 of every file (tar member, layout blob) of the output."""
    if kind == "oci":
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "blobs" / "sha256").iterdir()}
    with tarfile.open(out) as tar:
        return {hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_every_output_decodes_frames_on_the_pool(kind: str, tmp_path: Path, decoded_on_pool: list[str]) -> None:
    plain = _layer(3, 6 * FRAME - 1000)
    archive = _archive(tmp_path / "app.tar", [plain])
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    assert run_cli("push", repo, f"docker-archive:{archive}", env=env).returncode == 0
    decoded_on_pool.clear()  # the push decoded nothing; only the pull counts
    out = tmp_path / "out"
    proc = run_cli("pull", repo, "acme/app:1", "-o", f"{kind}:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(decoded_on_pool) == -(-len(plain) // FRAME) and all(name.startswith("lfsreg-unzstd") for name in decoded_on_pool), (
        decoded_on_pool
    )
    (stored,) = [p for p in (repo / "lfs" / "objects").rglob("*") if p.is_file() and p.stat().st_size > 10_000]
    want = hashlib.sha256(plain if kind == "docker-archive" else stored.read_bytes()).hexdigest()
    assert want in _blobs(out, kind)
    _pool_gone()


def test_fed_chunks_are_read_on_a_thread_and_its_error_is_raised_as_itself() -> None:
    seen: list[str] = []

    def consume(src: pipeline.Source) -> int:
        seen.append(threading.current_thread().name)
        total = 0
        while data := src.read(3):
            total += len(data)
            if total > 10:
                raise KeyError("too long")
        return total

    fed = pipeline.Fed(consume, name="lfsreg-decompress-test")
    fed.feed(b"abcd")
    fed.feed(b"")
    fed.feed(b"efgh")
    assert fed.close() == 8 and seen == ["lfsreg-decompress-test"]
    failing = pipeline.Fed(consume, depth=1)
    with pytest.raises(KeyError, match="too long"):
        for _ in range(100):
            failing.feed(b"x" * 4)
        failing.close()


def test_bytes_a_fed_reader_leaves_unread_are_an_error() -> None:
    fed = pipeline.Fed(lambda src: src.read(2))
    fed.feed(b"abcd")
    with pytest.raises(ValueError, match="2 bytes after the end"):
        fed.close()


def test_an_abandoned_feed_stops_its_thread() -> None:
    fed = pipeline.Fed(lambda src: src.read(-1) + src.read(-1), name="lfsreg-decompress-abandoned")
    fed.feed(b"abc")
    fed.abandon()
    del fed
    _pool_gone()


def test_ordered_results_come_back_in_order_within_the_window() -> None:
    release = threading.Event()
    order: list[int] = []

    def work(i: int) -> int:
        if i == 0:
            release.wait(5)  # the oldest finishes last
        return i

    work_done = pipeline.Ordered[int](2, 3, "lfsreg-zstd-test")
    for i in range(3):
        order.extend(work_done.submit(work, i))
    assert order == [] and len(work_done) == 3  # nothing taken before the oldest is done
    release.set()
    order.extend(work_done.submit(work, 3))  # a 4th over the window: waits for the oldest
    order.extend(work_done.drain())
    assert order == [0, 1, 2, 3]
    work_done.close()
