"""Bad input writes nothing: not a commit, and not even the empty repository of a first push.

Usage errors about names are found before the registry location is opened or created; a first
push that fails for any other reason (a corrupt source) removes the repository it created.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from conftest import assert_error, run_cli, sample, snapshot

APP = f"docker-archive:{sample('fixtures', 'app.docker.tar')}"
SHARED = f"oci:{sample('fixtures', 'shared.oci')}"
UNTAGGED = f"docker-archive:{sample('fixtures', 'untagged.docker.tar')}"


def _corrupt_archive(tmp_path: Path) -> Path:
    """``app.docker.tar`` with one byte of its largest member (a layer) changed."""
    out = tmp_path / "corrupt.docker.tar"
    with tarfile.open(sample("fixtures", "app.docker.tar")) as src, tarfile.open(out, "w") as dst:
        members = [m for m in src.getmembers()]
        largest = max((m for m in members if m.isfile()), key=lambda m: m.size)
        for m in members:
            f = src.extractfile(m) if m.isfile() else None
            data = f.read() if f else None
            if m is largest and data:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return out


USAGE = [
    pytest.param(lambda t: [SHARED, "--tag", "acme/one:1"], 2, "--tag", id="tag-with-several-images"),
    pytest.param(lambda t: [APP, "--tag", "acme/a:1", "--tag", "Bad Tag"], 2, "Bad Tag", id="malformed-tag"),
    pytest.param(lambda t: [APP, "--tag", "acme/a@sha256:" + "a" * 64], 2, "sha256", id="digest-as-tag"),
    pytest.param(lambda t: [UNTAGGED], 2, "name", id="untagged-no-tag"),
]


@pytest.mark.parametrize(("args", "code", "needle"), USAGE)
def test_usage_error_creates_no_registry(tmp_path, args, code, needle):
    repo = tmp_path / "new.git"
    assert_error(run_cli("push", repo, *args(tmp_path)), code, needle)
    assert not repo.exists()


def test_corrupt_source_creates_no_registry(tmp_path):
    repo = tmp_path / "new.git"
    bad = _corrupt_archive(tmp_path)
    assert_error(run_cli("push", repo, f"docker-archive:{bad}", "--tag", "bad/input:1"), 1, str(bad))
    assert not repo.exists()


def test_usage_error_into_empty_directory_leaves_it_empty(tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    assert_error(run_cli("push", repo, UNTAGGED), 2, "name")
    assert list(repo.iterdir()) == []


@pytest.mark.parametrize(("args", "code", "needle"), USAGE)
def test_usage_error_leaves_existing_registry_identical(tmp_path, registry, args, code, needle):
    before = snapshot(registry)
    assert_error(run_cli("push", registry, *args(tmp_path)), code, needle)
    assert snapshot(registry) == before


def test_corrupt_source_leaves_existing_registry_identical(tmp_path, registry):
    before = snapshot(registry)
    bad = _corrupt_archive(tmp_path)
    assert_error(run_cli("push", registry, f"docker-archive:{bad}", "--tag", "bad/input:1"), 1, str(bad))
    assert snapshot(registry) == before
