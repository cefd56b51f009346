"""The ``docker save`` ingest writes layers through the one verified-write routine (issue 8).

Every staged layer is a :class:`lfsreg.staging.VerifiedWriter`: it hashes what it writes and,
when the stream's member name gives the digest of its bytes (``blobs/sha256/<hex>`` in the
format Docker 25 saves, ``<hex>.tar`` in podman's), checks it before the layer is handed on.
A member whose bytes are not what its name says is refused in one error naming it, and its
staged file is gone; an honest stream stages files that hash to the digests it reports.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from lfsreg.digest import Digest
from lfsreg.errors import CorruptContentError
from lfsreg.formats.docker_save import images_of, ingest_stream
from lfsreg.layers import Compression, LayerStaging
from lfsreg.progress import no_progress
from lfsreg.staging import staged_file

BIG = 2 << 20  # past the in-memory limit: the member is staged while the stream goes by


def _layer_tar(seed: int) -> bytes:
    payload = os.urandom(BIG) if seed else b"small\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"file{seed}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _stream(layer: bytes, member: str, diff_id: str) -> io.BytesIO:
    """A ``docker save`` stream with one image whose one layer is the member ``member``."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["acme/app:1.0"], "Layers": [member]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((member, layer), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def _how(directory: Path) -> LayerStaging:
    return LayerStaging(lambda: staged_file(str(directory)), Compression("zstd"), no_progress)


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip member", "plain member"])
def test_a_member_that_is_not_what_its_name_says_is_refused(tmp_path: Path, compressed: bool) -> None:
    plain = _layer_tar(1)
    diff_id = f"sha256:{hashlib.sha256(plain).hexdigest()}"
    data = gzip.compress(plain, compresslevel=1) if compressed else plain
    wrong = hashlib.sha256(b"something else").hexdigest()
    member = f"blobs/sha256/{wrong}" if compressed else f"{wrong}.tar"
    staging = tmp_path / "staging"

    with pytest.raises(CorruptContentError, match=member.replace(".", r"\.")):
        ingest_stream(_stream(data, member, diff_id), "docker-daemon:acme/app:1.0", present=set(), how=_how(staging))
    assert list(staging.iterdir()) == [], "the refused layer's staged file is still there"


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip member", "plain member"])
@pytest.mark.parametrize("seed", [0, 1], ids=["kept in memory", "streamed"])
def test_an_honest_stream_stages_verified_layers(tmp_path: Path, compressed: bool, seed: int) -> None:
    plain = _layer_tar(seed)
    diff_id = f"sha256:{hashlib.sha256(plain).hexdigest()}"
    data = gzip.compress(plain, compresslevel=1) if compressed else plain
    member = f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"
    staging = tmp_path / "staging"
    how = _how(staging)

    got = ingest_stream(_stream(data, member, diff_id), "docker-daemon:acme/app:1.0", present=set(), how=how)
    try:
        ((_, _, _, staged, _),) = list(images_of(got, how))
        ((source_digest, layer),) = staged.items()
        assert layer.diff_id == Digest.parse(diff_id)
        assert layer.staged is not None
        stored = Path(layer.staged).read_bytes()
        assert f"sha256:{hashlib.sha256(stored).hexdigest()}" == str(layer.desc.digest)
        assert len(stored) == layer.desc.size
        if compressed:  # kept byte for byte
            assert stored == data and source_digest == layer.desc.digest
    finally:
        got.discard()
    assert list(staging.iterdir()) == []
