"""The transports table is the one place that knows a transport: a new one is a module plus a row."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import fixture

import lfsreg
from lfsreg.digest import Digest
from lfsreg.errors import BlobNotFound, InvalidReference
from lfsreg.image import Root
from lfsreg.manifest import Descriptor
from lfsreg.transports import DAEMON, TRANSPORTS, PullTarget, SourceRef, Transport, parse_source, parse_target


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("docker-archive:x.tar", SourceRef("docker-archive", "x.tar")),
        ("docker-archive:x.tar:acme/app:1.0", SourceRef("docker-archive", "x.tar", "acme/app:1.0")),
        ("docker-archive:x.tar:@1", SourceRef("docker-archive", "x.tar", "@1")),
        ("oci:dir:v1", SourceRef("oci", "dir", "v1")),
        ("oci-archive:a.tar", SourceRef("oci-archive", "a.tar")),
        ("acme/app", SourceRef(DAEMON, "acme/app:latest")),
        ("docker-daemon:docker.io/library/alpine:3", SourceRef(DAEMON, "alpine:3")),
    ],
)
def test_source_references(text, parsed):
    assert parse_source(text) == parsed


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("docker-archive:out.tar", PullTarget("docker-archive", "out.tar")),
        ("oci:dir:v1", PullTarget("oci", "dir", "v1")),
        ("oci-archive:a.tar", PullTarget("oci-archive", "a.tar")),
        ("docker-daemon:", PullTarget(DAEMON, "")),
        ("docker-daemon", PullTarget(DAEMON, "")),
    ],
)
def test_destination_references(text, parsed):
    assert parse_target(text) == parsed


@pytest.mark.parametrize("text", ["nosuch:x", "oci:", "docker-archive:x.tar:acme/app:1", "docker-daemon:acme/app:1", "Upper:Case"])
def test_bad_destination_references(text):
    with pytest.raises(InvalidReference):
        parse_target(text)


@pytest.mark.parametrize("text", ["nosuch:x:y:z", "oci:", "docker-archive:x.tar:UPPER:1", "a//b"])
def test_bad_source_references(text):
    with pytest.raises(InvalidReference):
        parse_source(text)


class _MemorySource:
    """A transport's source in a few lines: blobs by digest, one root."""

    def __init__(self, layout: Path) -> None:
        self.label = "mem"
        self._blobs = {Digest.sha256(p.name): p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}
        index = json.loads((layout / "index.json").read_text())
        self._roots = [Root(Descriptor.from_json(index["manifests"][0], "index.json"))]

    def roots(self) -> list[Root]:
        return self._roots

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest not in self._blobs:
            raise BlobNotFound(f"mem: no blob {desc.digest}")
        return io.BytesIO(self._blobs[desc.digest])

    def close(self) -> None:
        pass


def test_a_new_transport_is_one_row(tmp_path, monkeypatch):
    row = Transport("mem", lambda refs, spool_dir: _MemorySource(fixture("app.oci")), lambda roots, selector, label: roots, None, None)
    monkeypatch.setitem(TRANSPORTS, "mem", row)
    assert parse_source("mem:anything") == SourceRef("mem", "anything")
    with pytest.raises(InvalidReference, match="not a pull destination"):
        parse_target("mem:anything")
    reg = lfsreg.Registry(str(tmp_path / "reg.git"))
    pushed = reg.push(["mem:anything"], tags=["acme/mem:1"])
    assert [(i.name, i.tag) for i in pushed.images] == [("acme/mem", "1")]
    direct = reg.push([f"oci:{fixture('app.oci')}"], tags=["acme/oci:1"])
    assert pushed.images[0].digest == direct.images[0].digest  # the same image as through oci:
