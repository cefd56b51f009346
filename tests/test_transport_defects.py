"""Defects of the image transports found by trying to break them (issue 8: #6, #7, #10, #11).

- ``pull -o oci:DIR`` into an existing layout kept a blob file it found there unchecked.
- An existing ``oci:`` destination with a damaged ``index.json`` ended in an internal error.
- A FIFO in an ``oci:`` source directory blocked a push forever; a symlink out of it was read.
- A digest where a tag is needed (``--tag NAME@sha256:…``, a ``RepoTags`` entry) moved ``latest``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, lfs_objects, run_cli, snapshot, verify_layout

import lfsreg

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def app_registry(tmp_path):
    repo = tmp_path / "reg.git"
    lfsreg.Registry(str(repo)).push([f"docker-archive:{fixture('app.docker.tar')}"])
    return repo


def _largest_blob(layout: Path) -> Path:
    return max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)


# -- #6: blobs already in an oci: destination ----------------------------------------------------------
@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_pull_into_existing_layout_replaces_a_damaged_blob(tmp_path, app_registry, damage):
    out = tmp_path / "out"
    assert_ok(run_cli("pull", app_registry, "acme/app:1.0", "-o", f"oci:{out}"))
    victim = _largest_blob(out)
    good = victim.read_bytes()
    data = bytearray(good)
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data.clear()
    victim.write_bytes(bytes(data))
    assert_ok(run_cli("pull", app_registry, "acme/app:1.0", "-o", f"oci:{out}:again"))
    assert victim.read_bytes() == good
    verify_layout(out)


def test_pull_into_existing_layout_keeps_intact_blobs(tmp_path, app_registry):
    out = tmp_path / "out"
    assert_ok(run_cli("pull", app_registry, "acme/app:1.0", "-o", f"oci:{out}"))
    inodes = {p.name: p.stat().st_ino for p in (out / "blobs" / "sha256").iterdir()}
    assert_ok(run_cli("pull", app_registry, "acme/app:1.0", "-o", f"oci:{out}:again"))
    assert {p.name: p.stat().st_ino for p in (out / "blobs" / "sha256").iterdir()} == inodes  # verified, not rewritten
    refs = [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.loads((out / "index.json").read_text())["manifests"]]
    assert sorted(refs) == ["1.0", "again"]


# -- #11: a damaged index.json in an existing destination ----------------------------------------------
@pytest.mark.parametrize(
    "index",
    [
        b"{not json",
        b'{"manifests": 7}',
        b'{"manifests": [5]}',
        b'{"manifests": [{"annotations": []}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["not-json", "manifests-not-list", "entry-not-object", "annotations-not-object", "deeply-nested"],
)
def test_existing_destination_with_invalid_index_is_one_line_error(tmp_path, app_registry, index):
    out = tmp_path / "out"
    out.mkdir()
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (out / "index.json").write_bytes(index)
    proc = run_cli("pull", app_registry, "acme/app:1.0", "-o", f"oci:{out}")
    assert_error(proc, 1, "index.json")
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "oci-layout"]  # nothing written
    assert (out / "index.json").read_bytes() == index


# -- #10: anything but regular files in an oci: source -------------------------------------------------
def _layout_copy(tmp_path: Path) -> tuple[Path, Path]:
    layout = tmp_path / "app.oci"
    shutil.copytree(fixture("app.oci"), layout)
    return layout, _largest_blob(layout)


def test_fifo_in_oci_source_is_refused_not_waited_on(tmp_path):
    layout, victim = _layout_copy(tmp_path)
    victim.unlink()
    os.mkfifo(victim)
    repo = tmp_path / "reg.git"
    proc = run_cli("push", repo, f"oci:{layout}", "--tag", "acme/app:1.0")  # CLI_TIMEOUT would end a blocked push
    assert_error(proc, 1, victim.name[:12], "not a regular file")
    assert not repo.exists() or snapshot(repo)[0] is None


def test_fifo_as_index_json_is_refused(tmp_path):
    layout, _ = _layout_copy(tmp_path)
    (layout / "index.json").unlink()
    os.mkfifo(layout / "index.json")
    proc = run_cli("push", tmp_path / "reg.git", f"oci:{layout}", "--tag", "acme/app:1.0")
    assert_error(proc, 1, "index.json", "not a regular file")


def test_fifo_as_archive_source_is_refused(tmp_path):
    fifo = tmp_path / "app.tar"
    os.mkfifo(fifo)
    proc = run_cli("push", tmp_path / "reg.git", f"docker-archive:{fifo}")
    assert_error(proc, 1, "not a regular file")


def test_symlink_out_of_oci_source_is_refused(tmp_path):
    layout, victim = _layout_copy(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.write_bytes(victim.read_bytes())  # even the right bytes: the layout does not hold them
    victim.unlink()
    victim.symlink_to(outside)
    repo = tmp_path / "reg.git"
    proc = run_cli("push", repo, f"oci:{layout}", "--tag", "acme/app:1.0")
    assert_error(proc, 1, victim.name[:12], "out of the directory")
    assert not repo.exists() or snapshot(repo)[0] is None


def test_symlink_inside_oci_source_is_followed(tmp_path):
    layout, victim = _layout_copy(tmp_path)
    inside = layout / "moved"
    victim.rename(inside)
    victim.symlink_to(Path("..") / ".." / "moved")
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("push", repo, f"oci:{layout}", "--tag", "acme/app:1.0"))
    assert victim.name in {p.name for p in lfs_objects(repo)}  # the blob behind the link was stored


# -- #7: a digest where a tag is needed ------------------------------------------------------------------
def test_tag_option_with_digest_is_usage_error(tmp_path, app_registry):
    before = snapshot(app_registry)
    proc = run_cli("push", app_registry, f"docker-archive:{fixture('tool.docker.tar')}", "--tag", f"acme/app@{DIGEST}")
    assert_error(proc, 2, f"acme/app@{DIGEST}")
    assert snapshot(app_registry) == before
    assert [t.tag for t in lfsreg.Registry(str(app_registry)).tags("acme/app")] == ["1.0"]


def _archive_with_repotags(src: Path, dst: Path, tags: list[str]) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            if info.name == "manifest.json":
                doc = json.loads(data)
                doc[0]["RepoTags"] = tags
                data = json.dumps(doc).encode()
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def test_repotags_entry_with_digest_is_usage_error(tmp_path, app_registry):
    archive = tmp_path / "digest-tag.tar"
    _archive_with_repotags(fixture("tool.docker.tar"), archive, [f"acme/app@{DIGEST}"])
    before = snapshot(app_registry)
    proc = run_cli("push", app_registry, f"docker-archive:{archive}")
    assert_error(proc, 2, f"acme/app@{DIGEST}")
    assert snapshot(app_registry) == before
    assert [t.tag for t in lfsreg.Registry(str(app_registry)).tags("acme/app")] == ["1.0"]
