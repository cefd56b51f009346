"""A pull decodes a zstd layer's independent frames on a thread pool (lfsreg.zstd_frames).

Frames are found by walking their headers and blocks; a frame declaring a small content size is
decoded whole on the pool, any other (a streamed frame, one frame of a whole layer as other
tools write it) in order, a few blocks at a time. Nothing of the stream is trusted: trailing
bytes, a truncated stream, a frame whose size is not the one its header declares, a damaged
block all fail, the pool stops, and a pull publishes nothing. Frames are shrunk to 64 KiB so
that small layers have many.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
import zstandard
from conftest import run_cli
from gitenv import cli_env
from test_zstd_pipeline import _archive, _layer

from lfsreg import compression, layers, zstd_frames
from lfsreg.compression import compressor
from lfsreg.zstd_frames import FrameReader

FRAME = 64 << 10


@pytest.fixture(autouse=True)
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "ZSTD_FRAME", FRAME)
    monkeypatch.setattr(layers, "ZSTD_FRAME", FRAME)
    monkeypatch.setattr(zstd_frames, "_READ", 10_000)  # compressed reads that cut frames and headers anywhere


def _pool_gone() -> None:
    deadline = time.monotonic() + 5
    ours = ("lfsreg-unzstd", "lfsreg-read", "lfsreg-decompress", "lfsreg-zstd")  # a pull's and a push's pipeline
    while (left := [t.name for t in threading.enumerate() if t.name.startswith(ours)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"threads still running: {left}"


def _framed(data: bytes) -> bytes:
    out = io.BytesIO()
    comp = compressor("zstd", out, 3, 2)
    comp.write(data)
    comp.finish()
    return out.getvalue()


def _streamed(data: bytes) -> bytes:
    """One frame without a content size, as ``zstd`` writes from a pipe."""
    cobj = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    return cobj.compress(data) + cobj.flush()


def _read_all(stream: bytes, threads: int = 2, n: int = 50_000) -> bytes:
    reader = FrameReader(io.BytesIO(stream), threads)
    parts = []
    while part := reader.read(n):
        assert len(part) <= n
        parts.append(part)
    return b"".join(parts)


@pytest.fixture
def decoded_on_pool(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads that decoded a frame whole, one name per frame."""
    names: list[str] = []
    real = zstd_frames._decode

    def counting(frame: list[bytes | memoryview], size: int) -> list[bytes]:
        names.append(threading.current_thread().name)
        return real(frame, size)

    monkeypatch.setattr(zstd_frames, "_decode", counting)
    return names


DATA = _layer(7, 6 * FRAME + 999)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("n", [1 << 20, 4096])
def test_frames_are_decoded_on_the_pool_in_order(threads: int, n: int, decoded_on_pool: list[str]) -> None:
    assert _read_all(_framed(DATA), threads, n) == DATA
    assert len(decoded_on_pool) == 7 and all(name.startswith("lfsreg-unzstd") for name in decoded_on_pool)
    _pool_gone()


@pytest.mark.parametrize("how", ["streamed", "larger than pooled"])
def test_one_frame_of_a_whole_layer_is_decoded_in_order(how: str, decoded_on_pool: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "streamed":
        stream = _streamed(DATA)
    else:
        monkeypatch.setattr(zstd_frames, "MAX_POOLED", FRAME)
        stream = zstandard.ZstdCompressor().compress(DATA)
    reader = FrameReader(io.BytesIO(stream), 2)
    sizes = []
    while part := reader.read(1 << 30):
        sizes.append(len(part))
    assert sum(sizes) == len(DATA) and decoded_on_pool == []
    assert max(sizes) <= 32 * (128 << 10)  # fed a few blocks at a time: memory stays bounded
    _pool_gone()


def test_frames_of_every_kind_in_one_stream() -> None:
    skippable = b"\x5a\x2a\x4d\x18" + (20_000).to_bytes(4, "little") + os.urandom(20_000)
    stream = skippable + _framed(DATA) + _streamed(DATA[:5000]) + zstandard.ZstdCompressor().compress(b"") + skippable
    assert _read_all(stream) == DATA + DATA[:5000]
    assert _read_all(b"") == b""


def _content_size_plus_one(frame: bytes) -> bytes:
    """The frame with its header's content size one larger (a 2-, 4- or 8-byte field, RFC 8878)."""
    flag, single = frame[4] >> 6, frame[4] & 0x20
    assert flag, "a frame of lfsreg declares its content size"
    width, at = {1: 2, 2: 4, 3: 8}[flag], 5 + (0 if single else 1)
    size = int.from_bytes(frame[at : at + width], "little") + 1  # (+256 for 2 bytes: unchanged by +1)
    return frame[:at] + size.to_bytes(width, "little") + frame[at + width :]


def _middle_frame_damaged(stream: bytes, how: str) -> bytes:
    frames, rest = [], stream
    while rest:
        one = zstandard.ZstdDecompressor().decompressobj()
        one.decompress(rest)
        frames.append(rest[: len(rest) - len(one.unused_data)])
        rest = one.unused_data
    mid = frames[3]
    if how == "size":
        frames[3] = _content_size_plus_one(mid)
    else:  # the first block header's type bits set to the reserved 3
        at = zstandard.frame_header_size(mid)
        frames[3] = mid[:at] + bytes([mid[at] | 0b110]) + mid[at + 1 :]
    return b"".join(frames)


@pytest.mark.parametrize(
    "damage",
    [
        "trailing garbage",
        "a truncated frame header after the last frame",
        "truncated in a frame",
        "truncated in a block header",
        "a middle frame declaring one byte more",
        "a middle frame with a reserved block type",
        "a streamed frame's checksum",
    ],
)
def test_a_damaged_stream_fails_and_stops_the_pool(damage: str) -> None:
    framed = _framed(DATA)
    stream = {
        "trailing garbage": framed + b"garbage!",
        "a truncated frame header after the last frame": framed + zstandard.FRAME_HEADER + b"\x00",
        "truncated in a frame": framed[: len(framed) // 2],
        "truncated in a block header": framed[: zstandard.frame_header_size(framed) + 2],
        "a middle frame declaring one byte more": _middle_frame_damaged(framed, "size"),
        "a middle frame with a reserved block type": _middle_frame_damaged(framed, "block type"),
        "a middle frame's block damaged": _middle_frame_damaged(framed, "bytes"),
        "a streamed frame's checksum": _streamed(DATA)[:-1] + b"\x00",
    }[damage]
    reader = FrameReader(io.BytesIO(stream), 2)
    got = b""
    with pytest.raises(zstandard.ZstdError):
        while part := reader.read(FRAME):
            got += part
    assert DATA.startswith(got)  # what came before the damage, in order (all of it before trailing bytes)
    del reader
    _pool_gone()


# -- through a pull --------------------------------------------------------------------------------
@pytest.fixture
def one_frame_archive(tmp_path: Path) -> tuple[Path, bytes]:
    """A docker-archive whose one layer arrives zstd-compressed as ONE streamed frame (push keeps it as is)."""
    tar = _layer(5, 5 * FRAME)
    path = _archive(tmp_path / "one.tar", [tar])
    with tarfile.open(path) as src:  # the same archive, its layer member compressed
        members = [(m, src.extractfile(m).read()) for m in src]  # type: ignore[union-attr]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as out:
        for member, data in members:
            data = _streamed(data) if data == tar else data
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return path, tar


def _pulled_layers(path: Path) -> set[bytes]:
    with tarfile.open(path) as tar:
        return {tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_a_layer_another_tool_stored_as_one_frame_pulls(one_frame_archive: tuple[Path, bytes], tmp_path: Path) -> None:
    archive, tar = one_frame_archive
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    assert run_cli("push", repo, f"docker-archive:{archive}", env=env).returncode == 0
    stored = [p.read_bytes() for p in (repo / "lfs" / "objects").rglob("*") if p.is_file()]
    assert _streamed(tar) in stored  # kept as it came: one frame, no content size in its header
    out = tmp_path / "out.tar"
    proc = run_cli("pull", repo, "acme/app:1", "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert tar in _pulled_layers(out)
    _pool_gone()


@pytest.mark.parametrize("damage", ["truncated", "garbage appended", "a middle frame declaring one byte more"])
def test_a_damaged_stored_layer_pulls_nothing(damage: str, tmp_path: Path) -> None:
    # (a stored layer damaged inside a block: test_zstd_pipeline; the diff_id check catches it)
    archive = _archive(tmp_path / "app.tar", [_layer(1, 6 * FRAME)])
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    assert run_cli("push", repo, f"docker-archive:{archive}", env=env).returncode == 0
    (obj,) = [p for p in (repo / "lfs" / "objects").rglob("*") if p.is_file() and p.stat().st_size > 10_000]
    data = obj.read_bytes()
    obj.chmod(0o644)
    damaged = {
        "truncated": data[: len(data) // 2],
        "garbage appended": data + zstandard.FRAME_HEADER + b"x" * 100,
        "a middle frame declaring one byte more": _middle_frame_damaged(data, "size"),
    }[damage]
    obj.write_bytes(damaged)
    out = tmp_path / "out.tar"
    proc = run_cli("pull", repo, "acme/app:1", "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".lfsreg-")] == []
    _pool_gone()
