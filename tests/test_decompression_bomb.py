"""A small compressed input that expands to a lot is decoded a bounded piece at a time (issue 13 item 3).

A compressed layer whose bytes are kept (pushed as it came, pulled to an OCI layout) is still
decompressed on the side to check its diff_id (``integrity.DiffIdCheck``, ``layers``' docker-save
members). Those decoders used to return everything one compressed chunk expanded to at once, so
a few KiB of hostile zstd RLE blocks or gzip of zeros were held in memory as the whole output,
gigabytes for a larger bomb. Here 2 KiB of zstd (or 64 KiB of gzip) expand to 64 MiB; the
traced memory at its peak must stay far below that. The bombs are crafted by hand (RFC 8878
frame header and RLE blocks), so nothing large is compressed to make them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import zstandard
from conftest import run_cli
from gitenv import cli_env

from lfsreg.digest import Digest
from lfsreg.errors import CorruptContentError
from lfsreg.integrity import DiffIdCheck

PLAIN = 64 << 20  # what each bomb expands to: zeros
LIMIT = 24 << 20  # the peak of traced memory allowed while it is checked (the old decoders held all of PLAIN)
_BLOCK = 128 << 10  # an RLE block's output, the most a block may give (Block_Maximum_Size)


def _zstd_bomb(declared: bool, plain: int = PLAIN) -> bytes:
    """One zstd frame of RLE blocks of zeros (window 1 MiB), its content size in its header or not."""
    blocks = plain // _BLOCK
    # descriptor: an 8-byte content size or none, not single segment; then the window descriptor: 1 MiB
    head = zstandard.FRAME_HEADER + (bytes([0xC0, 0x50]) + plain.to_bytes(8, "little") if declared else bytes([0x00, 0x50]))
    return head + b"".join((_BLOCK << 3 | 1 << 1 | (i == blocks - 1)).to_bytes(3, "little") + b"\0" for i in range(blocks))


@functools.cache
def _gzip_bomb() -> bytes:
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(gz.compress(zeros) for _ in range(PLAIN >> 20)) + gz.flush()


@functools.cache
def _zeros_digest() -> Digest:
    plain = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(PLAIN >> 20):
        plain.update(zeros)
    return Digest("sha256", plain.hexdigest())


@contextmanager
def _peak() -> Iterator[list[int]]:
    """The peak of memory allocated through Python's allocators (every thread) inside the block."""
    box: list[int] = []
    tracemalloc.start()
    try:
        yield box
    finally:
        box.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


BOMBS = {
    "zstd, its size declared": ("zstd", lambda: _zstd_bomb(True)),
    "zstd, no size declared": ("zstd", lambda: _zstd_bomb(False)),
    "gzip": ("gzip", _gzip_bomb),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_a_bomb_is_checked_in_bounded_pieces(kind: str) -> None:
    algorithm, make = BOMBS[kind]
    data = make()
    assert len(data) < PLAIN // 500
    check = DiffIdCheck(algorithm, _zeros_digest(), "layer x")
    with _peak() as peak:
        check.feed(data)
        check.verify()
    assert check.size == PLAIN
    assert peak[0] < LIMIT, f"{peak[0] >> 20} MiB held at once"


def test_a_bomb_with_a_wrong_diff_id_is_refused() -> None:
    check = DiffIdCheck("zstd", Digest("sha256", "0" * 64), "layer x")
    check.feed(_zstd_bomb(False, 4 << 20))
    with pytest.raises(CorruptContentError, match="uncompressed content is"):
        check.verify()


def _bomb_archive(path: Path, layer: bytes) -> Path:
    """A ``docker save`` tarball of ``acme/bomb:1`` whose one layer member is ``layer`` (compressed zeros)."""
    rootfs = {"type": "layers", "diff_ids": [str(_zeros_digest())]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_name = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["acme/bomb:1"], "Layers": [layer_name]}]).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(layer_name, layer), (config_name, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_bomb_layer_is_pushed_and_pulled_to_a_layout_in_bounded_pieces(tmp_path: Path) -> None:
    """The push keeps the compressed member as it came and the OCI pull copies it: both decode it only to check it."""
    archive = _bomb_archive(tmp_path / "bomb.tar", _zstd_bomb(True))
    repo, env = tmp_path / "reg.git", cli_env(tmp_path)
    assert run_cli("init", repo, env=env).returncode == 0
    with _peak() as pushed:
        proc = run_cli("push", repo, f"docker-archive:{archive}", env=env)
    assert proc.returncode == 0, proc.stderr
    with _peak() as pulled:
        proc = run_cli("pull", repo, "acme/bomb:1", "-o", f"oci:{tmp_path / 'out'}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "blobs" / "sha256" / hashlib.sha256(_zstd_bomb(True)).hexdigest()).is_file()
    assert pushed[0] < LIMIT and pulled[0] < LIMIT, f"push {pushed[0] >> 20} MiB, pull {pulled[0] >> 20} MiB held at once"
