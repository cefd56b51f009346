"""A tar output copies its large members (layers) on lanes, several at once (issue 13 item 3).

Each layer's reading and hashing is one chain of work (sha256 does not split), so an
uncompressed pull was as long as one sha256 pass over the image plus the rest. ``TarSink``
now writes each large member's header in order and copies its bytes on a lane of its own into
the place reserved for them. The archive must be byte for byte the one written in order, a
lane's failure must fail the output (nothing published, nothing left), and no lane may outlive
the sink. ``LANE_MIN`` is shrunk so that small members take lanes.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from test_zstd_pipeline import _archive, _layer

from lfsreg.digest import Digest
from lfsreg.errors import DigestMismatchError, InvalidImageError
from lfsreg.integrity import VerifiedReader
from lfsreg.transports import sinks
from lfsreg.transports.sinks import TarSink, write_all

SIZES = [5000, 300, 70_001, 1024, 12_345, 2048]


@pytest.fixture(autouse=True)
def small_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "LANE_MIN", 1000)


def _blob(i: int, size: int) -> bytes:
    return (hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1))[:size]


def _reader(data: bytes, expected: bytes | None = None) -> VerifiedReader:
    digest = Digest("sha256", hashlib.sha256(data if expected is None else expected).hexdigest())
    return VerifiedReader(io.BytesIO(data), digest, len(data), f"blob {digest}")


def _write(path: Path, lanes: int, blobs: list[bytes], bad: int | None = None) -> None:
    def write(sink: sinks.Sink) -> None:
        for i, data in enumerate(blobs):
            sink.put(f"blobs/{i}", len(data), _reader(data, b"other" if i == bad else None))
        sink.put_bytes("index.json", b"{}")

    write_all(TarSink(str(path), lanes=lanes), write)


def _no_lanes_left() -> None:
    deadline = time.monotonic() + 5
    while (left := [t.name for t in threading.enumerate() if t.name.startswith("lfsreg-lane")]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, left


def test_lanes_write_the_archive_written_in_order(tmp_path: Path) -> None:
    blobs = [_blob(i, n) for i, n in enumerate(SIZES)]
    _write(tmp_path / "lanes.tar", 2, blobs)
    _write(tmp_path / "order.tar", 1, blobs)
    assert (tmp_path / "lanes.tar").read_bytes() == (tmp_path / "order.tar").read_bytes()
    _no_lanes_left()


@pytest.mark.parametrize("bad", [0, 2, 4])
def test_a_lane_that_fails_publishes_nothing(tmp_path: Path, bad: int) -> None:
    blobs = [_blob(i, n) for i, n in enumerate(SIZES)]
    with pytest.raises(DigestMismatchError, match=f"blob sha256:{hashlib.sha256(b'other').hexdigest()}"):
        _write(tmp_path / "out.tar", 2, blobs, bad=bad)
    assert list(tmp_path.iterdir()) == []  # neither the archive nor its temporary file
    _no_lanes_left()


def test_a_short_member_on_a_lane_fails(tmp_path: Path) -> None:
    data = _blob(1, 9000)

    def write(sink: sinks.Sink) -> None:
        sink.put("blobs/short", len(data) + 10, _reader(data))

    with pytest.raises(InvalidImageError, match="shorter than the declared 9010 bytes"):
        write_all(TarSink(str(tmp_path / "out.tar"), lanes=2), write)
    assert list(tmp_path.iterdir()) == []
    _no_lanes_left()


def test_a_pull_on_lanes_writes_the_archive_a_pull_in_order_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(tmp_path / "app.tar", [_layer(i, 20_000 + 3_000 * i) for i in range(4)])
    env = cli_env(tmp_path)
    copied_on: list[str] = []
    real = sinks._copy_at

    def copy_at(*args: object) -> None:
        copied_on.append(threading.current_thread().name)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sinks, "_copy_at", copy_at)
    for comp in ("zstd", "gzip", "none"):
        repo = tmp_path / f"{comp}.git"  # one registry each: a registry holding a layer keeps it as stored
        assert run_cli("init", repo, env=env).returncode == 0
        proc = run_cli("push", repo, f"docker-archive:{archive}", "--compression", comp, env=env)
        assert proc.returncode == 0, proc.stderr
        pulled = {}
        for how, lane_min in (("lanes", 1000), ("in order", 1 << 40)):
            monkeypatch.setattr(sinks, "LANE_MIN", lane_min)
            out = tmp_path / f"{comp}-{how}.tar"
            proc = run_cli("pull", repo, "acme/app:1", "-o", f"docker-archive:{out}", env=env)
            assert proc.returncode == 0, proc.stderr
            pulled[how] = out.read_bytes()
        assert pulled["lanes"] == pulled["in order"]
    # the gzip and plain (none) layers on lanes; the zstd ones, decoded on a pool already, in order
    assert len(copied_on) == 8 and all(name.startswith("lfsreg-lane") for name in copied_on), copied_on
    _no_lanes_left()
