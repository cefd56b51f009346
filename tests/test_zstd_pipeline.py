"""Push and pull run a layer's stages on several threads (issue 13: as fast as the compressor).

A layer is read and hashed on one thread (:class:`lfsreg.pipeline.ReadAhead`), compressed as
independent zstd frames on a pool (:mod:`lfsreg.compression`), hashed and written on a third;
a pull reads, hashes and decompresses on one thread and hashes the plain bytes while writing on
another. Verification stays whole: whatever fails on any thread (a compressor, a short read, a
digest mismatch in the middle of a layer) fails the command, publishes nothing and leaves no
staged file and no thread behind. Frames are shrunk to 64 KiB so that small layers have many.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
import zstandard
from conftest import run_cli
from gitenv import cli_env

from lfsreg import compression, layers
from lfsreg.api import Registry
from lfsreg.compression import compressor, decompressing_reader
from lfsreg.errors import DigestMismatchError, InvalidImageError, LfsregError
from lfsreg.formats import files
from lfsreg.pipeline import ReadAhead

FRAME = 64 << 10
OURS = ("lfsreg-read", "lfsreg-zstd", "lfsreg-decompress")


@pytest.fixture(autouse=True)
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "ZSTD_FRAME", FRAME)
    monkeypatch.setattr(layers, "ZSTD_FRAME", FRAME)


def _no_threads_left() -> None:
    deadline = time.monotonic() + 5
    while (left := [t.name for t in threading.enumerate() if t.name.startswith(OURS)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"pipeline threads still running: {left}"


def _layer(seed: int, size: int = 5 * FRAME + 123) -> bytes:
    """A layer tar of compressible bytes (text-like, as a /usr tree is), several frames long."""
    words = [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[: 3 + i % 9] for i in range(500)]
    payload = " ".join(words[(i * 7 + seed) % 500] for i in range(size // 6)).encode()[:size]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data{seed}.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _archive(path: Path, layer_tars: list[bytes]) -> Path:
    """A ``docker save`` tarball of one image ``acme/app:1`` with these layers."""
    names = [f"{hashlib.sha256(t).hexdigest()}.tar" for t in layer_tars]
    rootfs = {"type": "layers", "diff_ids": [f"sha256:{n[:-4]}" for n in names]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["acme/app:1"], "Layers": names}]).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [*zip(names, layer_tars, strict=True), (config_name, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _untouched(repo: Path) -> None:
    """The registry has no tag, no LFS object and no staged file: nothing was published."""
    with Registry(str(repo)) as reg:
        assert list(reg.view().names()) == []
    objects = [p for p in (repo / "lfs").rglob("*") if p.is_file()]
    assert objects == [], f"files left in lfs/: {objects}"


# -- the stages ------------------------------------------------------------------------------------
def test_read_ahead_hands_over_exact_reads_and_the_source_error_as_itself() -> None:
    data = os.urandom(300_001)
    assert ReadAhead(io.BytesIO(data), chunk=4096).read() == data
    ahead = ReadAhead(io.BytesIO(data), chunk=4096)
    got = [ahead.read(n) for n in (4096, 1, 10_000, 4096, 0, 3)]
    assert [len(g) for g in got] == [4096, 1, 10_000, 4096, 0, 3]
    assert b"".join(got) + ahead.read(10**6) == data and ahead.read(5) == b""

    class Failing:
        def __init__(self) -> None:
            self.n = 0

        def read(self, n: int = -1) -> bytes:
            self.n += 1
            if self.n == 3:
                raise DigestMismatchError("layer x: expected sha256:a, got sha256:b")
            return b"x" * n

    ahead = ReadAhead(Failing(), chunk=100)
    assert ahead.read(200) == b"x" * 200
    with pytest.raises(DigestMismatchError, match="layer x: expected"):
        ahead.read(100)
    _no_threads_left()


def test_read_ahead_stops_when_the_consumer_leaves() -> None:
    class Endless:
        def read(self, n: int = -1) -> bytes:
            return b"y" * n

    ahead = ReadAhead(Endless(), chunk=1 << 16, name="lfsreg-read-test")
    assert ahead.read(10) == b"y" * 10
    ahead.close()
    deadline = time.monotonic() + 5
    while any(t.name == "lfsreg-read-test" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "lfsreg-read-test" for t in threading.enumerate())


@pytest.mark.parametrize("size", [0, FRAME, 3 * FRAME + 17])
def test_frames_depend_on_the_input_only_and_decompress_to_it(size: int) -> None:
    data = _layer(1)[:size] if size else b""
    outs = []
    for threads in (1, 3):
        out = io.BytesIO()
        comp = compressor("zstd", out, 3, threads)
        for i in range(0, len(data), 10_000):  # writes that do not line up with frames
            comp.write(data[i : i + 10_000])
        comp.finish()
        outs.append(out.getvalue())
    assert outs[0] == outs[1], "the output depends on the number of threads"
    frames, rest = 0, outs[0]
    while rest:  # independent frames, one per FRAME bytes of input (an empty input: one empty frame)
        params = zstandard.get_frame_parameters(rest)
        assert params.content_size == min(FRAME, size - frames * FRAME)
        one = zstandard.ZstdDecompressor().decompressobj()
        one.decompress(rest)
        rest, frames = one.unused_data, frames + 1
    assert frames == max(1, -(-size // FRAME))
    assert decompressing_reader("zstd", io.BytesIO(outs[0])).read() == data  # type: ignore[arg-type]


# -- push and pull ---------------------------------------------------------------------------------
def test_a_pushed_image_pulls_back_byte_for_byte(tmp_path: Path) -> None:
    tars = [_layer(1), _layer(2, 2 * FRAME), _layer(3, 100)]
    archive = _archive(tmp_path / "app.tar", tars)
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    for comp in ("zstd", "none"):
        assert run_cli("push", repo, f"docker-archive:{archive}", "--tag", f"acme/{comp}:1", "--compression", comp, env=env).returncode == 0
        out = tmp_path / f"{comp}.tar"
        proc = run_cli("pull", repo, f"acme/{comp}:1", "-o", f"docker-archive:{out}", env=env)
        assert proc.returncode == 0, proc.stderr
        with tarfile.open(out) as tar:
            pulled = {tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        assert set(tars) <= pulled
    _no_threads_left()


def test_a_failing_compressor_thread_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(tmp_path / "app.tar", [_layer(1), _layer(2)])
    repo = tmp_path / "reg.git"
    Registry(str(repo)).init()
    real, calls = compression._compress_frame, []

    def failing(data: bytes, level: int) -> bytes:
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise zstandard.ZstdError("out of memory")
        return real(data, level)

    monkeypatch.setattr(compression, "_compress_frame", failing)
    with Registry(str(repo)) as reg, pytest.raises(zstandard.ZstdError, match="out of memory"):
        reg.push([f"docker-archive:{archive}"])
    assert all(name.startswith("lfsreg-zstd") for name in calls), calls
    _untouched(repo)
    _no_threads_left()


def test_a_short_read_in_the_middle_of_a_layer_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(tmp_path / "app.tar", [_layer(1)])
    repo = tmp_path / "reg.git"
    Registry(str(repo)).init()
    opened = files._Region.__init__

    def truncating(self: files._Region, path: str, member: files._Member) -> None:
        opened(self, path, member)
        if member.size > 4 * FRAME:  # the layer: the archive loses its end while it is read
            os.truncate(path, member.offset + 2 * FRAME + 5)

    monkeypatch.setattr(files._Region, "__init__", truncating)
    with Registry(str(repo)) as reg, pytest.raises(InvalidImageError, match="truncated"):
        reg.push([f"docker-archive:{archive}"])
    _untouched(repo)
    _no_threads_left()


@pytest.mark.parametrize("comp", ["zstd", "none"])
def test_a_digest_mismatch_in_the_middle_of_a_layer_publishes_nothing(tmp_path: Path, comp: str) -> None:
    good = _layer(1)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    archive = _archive(tmp_path / "app.tar", [good])
    name = f"{hashlib.sha256(good).hexdigest()}.tar"
    with tarfile.open(archive) as tar:  # the same archive, the layer's middle byte changed
        member = tar.getmember(name)
    with open(archive, "r+b") as f:
        f.seek(member.offset_data)
        f.write(bytes(bad))
    repo = tmp_path / "reg.git"
    Registry(str(repo)).init()
    with Registry(str(repo)) as reg, pytest.raises(LfsregError, match=f"sha256:{name[:-4]}"):
        reg.push([f"docker-archive:{archive}"], compression=comp)
    _untouched(repo)
    _no_threads_left()


def test_a_layer_damaged_in_the_middle_is_refused_by_pull(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "app.tar", [_layer(1)])
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    assert run_cli("push", repo, f"docker-archive:{archive}", env=env).returncode == 0
    (obj,) = [p for p in (repo / "lfs" / "objects").rglob("*") if p.is_file()]
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    out = tmp_path / "out.tar"
    proc = run_cli("pull", repo, "acme/app:1", "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) >= 1, proc.stderr
    assert "layer sha256:" in proc.stderr.splitlines()[0], proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".lfsreg-*")), "a partial output is left"
    _no_threads_left()
