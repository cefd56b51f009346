"""A docker-archive pull sizes a zstd layer from its frames' headers, so it reads no ``diffids/`` record.

A plain layer's tar header needs its uncompressed size before its bytes. lfsreg read it from the
layer's ``diffids/`` record, and a cold pull from a remote fetched in part spent four more
upload-pack exchanges (three shard levels and the file) on the records alone: 17 in all for one
image, 4 for the same image from a registry that holds only it (issue 13's time target is
1.5x). lfsreg's zstd frames each declare their size, so the layer's fetched object says it; a
record is still read for gzip layers (or a zstd layer whose frames declare none).
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
import zstandard
from conftest import FIXTURES, assert_ok, run_cli
from gitenv import cli_env
from imageverify import source_image, verify_docker_archive
from test_partial_fetch import _filters, _mirror_objects, _upload_pack_posts

from lfsreg.compression import compressor
from lfsreg.zstd_frames import declared_size

SOURCE = f"docker-archive:{FIXTURES / 'app.docker.tar'}"


def _sized(data: bytes) -> int | None:
    return declared_size(lambda pos, n: data[pos : pos + n], len(data))


@pytest.mark.interop
def test_cold_docker_archive_pull_of_a_zstd_image_reads_no_diffids_record(git_http_server, git_http_repo, tmp_path: Path) -> None:
    _filters(git_http_repo.path, True)
    assert_ok(
        run_cli(
            "push", git_http_repo.url, SOURCE, "--tag", "z/app:1", "--compression", "zstd", env=cli_env(tmp_path / "push", git_http_server)
        )
    )
    listed = subprocess.run(
        ["git", "-C", str(git_http_repo.path), "ls-tree", "-r", "--format=%(objectname)", "main", "diffids"],
        capture_output=True,
        text=True,
        check=True,
    )
    records = set(listed.stdout.split())
    assert records  # the push wrote one per layer

    before = _upload_pack_posts(git_http_server, git_http_repo)
    out = tmp_path / "out.tar"
    assert_ok(run_cli("pull", git_http_repo.url, "z/app:1", "-o", f"docker-archive:{out}", env=cli_env(tmp_path, git_http_server)))
    posts = _upload_pack_posts(git_http_server, git_http_repo) - before

    assert not records & _mirror_objects(tmp_path / "cache")  # no record fetched
    assert posts <= 13, posts  # 17 with the records' four levels
    (pulled,) = verify_docker_archive(out)
    assert pulled.diff_ids == source_image(SOURCE).diff_ids


def test_declared_size_of_lfsreg_frames_and_what_it_refuses() -> None:
    data = bytes(5 << 20) + b"lfsreg" * 300_000
    out = io.BytesIO()
    writer = compressor("zstd", out)
    for i in range(0, len(data), 1 << 20):
        writer.write(data[i : i + (1 << 20)])
    writer.finish()
    stream = out.getvalue()
    assert _sized(stream) == len(data)
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    assert _sized(skippable + stream) == len(data)
    unsized = zstandard.ZstdCompressor().compressobj()
    assert _sized(unsized.compress(data) + unsized.flush()) is None  # streamed: no size in the header
    for broken in (stream[:-5], stream + b"\0\0\0\0\0\0\0\0", b"not zstd at all"):
        with pytest.raises(zstandard.ZstdError):
            _sized(broken)
    # a frame that declares nothing but holds a million empty blocks is not walked to its end
    header = zstandard.ZstdCompressor(write_content_size=True, write_checksum=False).compress(b"")[:6]
    empty_raw_block = (0).to_bytes(3, "little")  # raw, size 0, not last
    hostile = header + empty_raw_block * 1_000_000 + (1).to_bytes(3, "little")
    assert _sized(hostile) is None
    # nor a million empty skippable frames
    assert _sized(((0x184D2A50).to_bytes(4, "little") + bytes(4)) * 1_000_000) is None
