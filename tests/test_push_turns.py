"""A push compresses one layer at a time, but the next starts while the last frames of one drain.

The turn (lfsreg.pipeline.Turn) passes once a layer is read, verified and its last frames are
with the pool, so the cores do not idle while those are compressed and written.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_zstd_pipeline import FRAME, _archive, _layer

from lfsreg import compression, layers
from lfsreg.api import Registry
from lfsreg.pipeline import Turn


@pytest.fixture(autouse=True)
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "ZSTD_FRAME", FRAME)
    monkeypatch.setattr(layers, "ZSTD_FRAME", FRAME)


def test_a_turn_is_over_once() -> None:
    lock = threading.Lock()
    with Turn(lock) as turn:
        assert lock.locked()
        turn.over()
        assert not lock.locked()
        with Turn(lock):  # the next one gets in while the first block is still running
            turn.over()
            assert lock.locked()
    assert not lock.locked()
    with Turn(None) as free:
        free.over()


def test_the_next_layer_starts_while_the_last_frames_drain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(tmp_path / "app.tar", [_layer(1, 4 * FRAME), _layer(2, 4 * FRAME), _layer(3, 4 * FRAME)])
    created = threading.Condition()
    count = [0]
    real_init, real_finish = compression._FramedZstd.__init__, compression._FramedZstd.finish
    overlapped = []

    def init(self: compression._FramedZstd, *args: object) -> None:
        real_init(self, *args)  # type: ignore[arg-type]
        with created:
            count[0] += 1
            self.index = count[0]  # type: ignore[attr-defined]
            created.notify_all()

    def finish(self: compression._FramedZstd) -> None:
        # a layer's frames drain only once the next layer's compressor exists (or 5 s passed)
        if self.index < 3:  # type: ignore[attr-defined]
            with created:
                overlapped.append(created.wait_for(lambda: count[0] > self.index, timeout=5))  # type: ignore[attr-defined]
        real_finish(self)

    monkeypatch.setattr(compression._FramedZstd, "__init__", init)
    monkeypatch.setattr(compression._FramedZstd, "finish", finish)
    repo = tmp_path / "reg.git"
    Registry(str(repo)).init()
    with Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{archive}"])
    assert overlapped == [True, True]  # the first two layers' drains saw the next one start
