"""Fuzzing image sources: ``docker save`` tarballs (file and stream parsers) and OCI layouts.

Starting from the real fixtures, a tarball or layout is damaged the ways a hostile or broken
producer could: ``manifest.json``, ``index.json``, ``oci-layout``, configs and manifests with
parts replaced, members renamed, dropped, cut, or turned into links, bytes flipped. Opening it
and reading every image it names may raise only lfsreg's own errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from fuzzing import FIXTURES, encode, json_values, mutated, only_lfsreg_errors
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lfsreg.digest import Digest
from lfsreg.formats import oci_layout as layout_format
from lfsreg.formats.docker_save import images_of, ingest_stream
from lfsreg.layers import Compression, LayerStaging
from lfsreg.manifest import Index, parse_config, parse_manifest
from lfsreg.progress import no_progress
from lfsreg.staging import staged_file
from lfsreg.transports import docker_archive, oci_layout

ARCHIVE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LIMIT = 1 << 20  # bytes read from any one blob


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(info, tar.extractfile(info).read() if info.isfile() else b"") for info in tar]  # type: ignore[union-attr]


BASE = _members(FIXTURES / "app.docker.tar")
JSON_MEMBERS = {info.name: json.loads(data) for info, data in BASE if info.name.endswith(".json") or info.name == "manifest.json"}
NAMES = st.sampled_from([info.name for info, _ in BASE]) | st.sampled_from(["../x", "/abs", "a/../../b", "manifest.json", "x/", "."])


@st.composite
def damaged_archive(draw: st.DrawFn) -> bytes:
    members = [(info, data) for info, data in BASE]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        i = draw(st.integers(min_value=0, max_value=len(members) - 1))
        info, data = members[i]
        kind = draw(st.sampled_from(["json", "bytes", "cut", "rename", "drop", "link", "hardlink"]))
        info = tarfile.TarInfo(info.name) if kind != "rename" else tarfile.TarInfo(draw(NAMES | st.text(min_size=1, max_size=30)))
        if kind == "json" and members[i][0].name in JSON_MEMBERS:
            data = encode(draw(mutated([JSON_MEMBERS[members[i][0].name]])))
        elif kind == "bytes":
            data = draw(st.binary(max_size=200))
        elif kind == "cut":
            data = data[: draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))]
        elif kind == "drop":
            del members[i]
            continue
        elif kind in ("link", "hardlink"):
            info.type = tarfile.SYMTYPE if kind == "link" else tarfile.LNKTYPE
            info.linkname = draw(NAMES)
            data = b""
        else:
            data = members[i][1]
        info.size = len(data) if info.type == tarfile.REGTYPE else 0
        members[i] = (info, data)
    out = io.BytesIO()
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    except (ValueError, UnicodeError):
        assume(False)
    raw = out.getvalue()
    if draw(st.booleans()):  # damage the bytes themselves: flip a run, or cut the archive short
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw = raw[:at] if draw(st.booleans()) else raw[:at] + draw(st.binary(min_size=1, max_size=64)) + raw[at + 64 :]
    return raw


@pytest.fixture
def scratch(tmp_path):
    """A directory emptied before each example (hypothesis reuses the function's fixtures)."""
    path = tmp_path / "scratch"

    def fresh() -> Path:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        return path

    return fresh


def _read_source(source) -> None:
    """What push does with a source, short of storing: every root, manifest, config and layer."""
    try:
        todo = [r.descriptor for r in source.roots()]
        seen: set[Digest] = set()
        while todo and len(seen) < 50:
            desc = todo.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            with source.open_blob(desc) as f:
                data = f.read(LIMIT)
            if desc.size > LIMIT or "json" not in desc.media_type:
                continue
            parsed = only_lfsreg_errors(parse_manifest, data, "fuzz")
            if isinstance(parsed, Index):
                todo += parsed.manifests
            elif parsed is not None:
                todo += parsed.layers
                with source.open_blob(parsed.config) as f:
                    only_lfsreg_errors(parse_config, f.read(LIMIT), "fuzz")
    finally:
        source.close()


@ARCHIVE
@given(damaged_archive())
def test_docker_archive_file(scratch, data):
    path = scratch() / "image.tar"
    path.write_bytes(data)
    source = only_lfsreg_errors(docker_archive.open_source, str(path), str(path.parent))
    if source is not None:
        only_lfsreg_errors(_read_source, source)
    assert sorted(p.name for p in path.parent.iterdir()) == ["image.tar"], "a spooled copy was left behind"


def _staging(directory: Path):
    def stage():
        return staged_file(str(directory))  # the writer every store stages layers through

    return stage


@ARCHIVE
@given(damaged_archive(), st.booleans())
def test_docker_save_stream(scratch, data, known):
    directory = scratch()
    how = LayerStaging(_staging(directory), Compression("none"), no_progress)
    present = {Digest.parse(d) for d in JSON_MEMBERS_DIFF_IDS} if known else set()
    got = only_lfsreg_errors(ingest_stream, io.BytesIO(data), "fuzz", present=present, how=how)
    if got is not None:
        try:
            only_lfsreg_errors(lambda: list(images_of(got, how)))
        finally:
            got.discard()


JSON_MEMBERS_DIFF_IDS = [d for doc in JSON_MEMBERS.values() if isinstance(doc, dict) for d in doc.get("rootfs", {}).get("diff_ids", [])]


# -- OCI layouts -----------------------------------------------------------------------------------------
LAYOUT = FIXTURES / "multi.oci"
BLOBS = sorted(p.name for p in (LAYOUT / "blobs" / "sha256").iterdir())
LAYOUT_JSON = {name: json.loads((LAYOUT / name).read_bytes()) for name in ("index.json", "oci-layout")}
for _blob in BLOBS:
    with contextlib.suppress(ValueError, UnicodeDecodeError):  # layers are not JSON
        LAYOUT_JSON[f"blobs/sha256/{_blob}"] = json.loads((LAYOUT / "blobs" / "sha256" / _blob).read_bytes())


@st.composite
def damaged_layout(draw: st.DrawFn, root: Path) -> Path:
    shutil.copytree(LAYOUT, root)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        name = draw(st.sampled_from(sorted(LAYOUT_JSON) + [f"blobs/sha256/{b}" for b in BLOBS]))
        target = root / name
        kind = draw(st.sampled_from(["json", "any-json", "bytes", "drop", "dir", "link"]))
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if kind == "json" and name in LAYOUT_JSON:
            target.write_bytes(encode(draw(mutated([LAYOUT_JSON[name]]))))
        elif kind == "any-json":
            target.write_bytes(encode(draw(json_values)))
        elif kind == "bytes":
            target.write_bytes(draw(st.binary(max_size=200)))
        elif kind == "dir":
            target.mkdir()
        elif kind == "link":
            target.symlink_to(draw(st.sampled_from(["/etc/passwd", "../../..", "index.json", "missing"])))
    return root


@ARCHIVE
@given(st.data(), st.booleans())
def test_oci_layout(scratch, data, as_archive):
    root = data.draw(damaged_layout(scratch() / "layout"))
    path = root
    if as_archive:
        path = root.parent / "layout.tar"
        with tarfile.open(path, "w") as tar:
            tar.add(root, arcname=".")
    source = only_lfsreg_errors(oci_layout.open_source, str(path), str(root.parent))
    if source is not None:
        only_lfsreg_errors(_read_source, source)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | json_values.map(encode) | mutated([LAYOUT_JSON["index.json"]]).map(encode))
def test_existing_index_json_of_a_destination(data):
    only_lfsreg_errors(layout_format.index_entries, data, "fuzz")
