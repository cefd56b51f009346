"""Malformed JSON in image sources is one line naming the file, never an internal error (issue 8, defect 11).

Deeply nested JSON (Python's decoder recurses), ``annotations`` that is not an object of
strings, and ``"size": true`` (a bool is an int in Python) each reached ``internal error ...
report it``, or were silently taken as a size of 1.
"""

from __future__ import annotations

import json

import pytest
from conftest import assert_error, run_cli, snapshot
from hostile import FIXTURES, app_manifest, descriptor, docker_archive_with, dumps, oci_layout

DEEP = 100_000


def _deep_list() -> bytes:
    return b"[" * DEEP + b"]" * DEEP


def _entry(desc: dict, **extra: object) -> dict:
    return {**desc, "annotations": {"org.opencontainers.image.ref.name": "1.0"}, **extra}


def _index(*entries: dict) -> dict:
    return {"schemaVersion": 2, "manifests": list(entries)}


def _push_refused(registry, source: str, *needles: str) -> None:
    before = snapshot(registry)
    assert_error(run_cli("push", registry, source, "--tag", "bad/input:1"), 1, *needles)
    assert snapshot(registry) == before


def test_deeply_nested_manifest_json(tmp_path, registry):
    src = docker_archive_with(FIXTURES / "app.docker.tar", tmp_path / "deep.tar", {"manifest.json": _deep_list()})
    _push_refused(registry, f"docker-archive:{src}", str(src), "manifest.json")


def test_deeply_nested_index_json(tmp_path, registry):
    raw = b'{"schemaVersion":2,"manifests":' + _deep_list() + b"}"
    src = oci_layout(tmp_path / "deep", [], raw)
    _push_refused(registry, f"oci:{src}", str(src), "index.json")


@pytest.mark.parametrize("what", ["manifest", "config"])
def test_deeply_nested_manifest_or_config(tmp_path, registry, what):
    desc, data = app_manifest()
    manifest = json.loads(data)
    deep = b',"deep":' + _deep_list() + b"}"
    blobs = []
    if what == "config":
        config = b'{"rootfs":{"type":"layers","diff_ids":[]}' + deep
        manifest.update(layers=[], config=descriptor(config, manifest["config"]["mediaType"]))
        blobs.append(config)
        raw = dumps(manifest)
    else:
        raw = dumps(manifest)[:-1] + deep
    src = oci_layout(tmp_path / "deep", [*blobs, raw], _index(_entry(descriptor(raw, desc["mediaType"]))))
    _push_refused(registry, f"oci:{src}:1.0", str(src), "nested")


@pytest.mark.parametrize("notes", [["x"], "x", 5, {"a": 1}], ids=["list", "string", "number", "non-string-value"])
def test_annotations_not_an_object_of_strings(tmp_path, registry, notes):
    desc, _ = app_manifest()
    src = oci_layout(tmp_path / "notes", [], _index({**desc, "annotations": notes}))
    _push_refused(registry, f"oci:{src}", str(src), "index.json", "annotations")


def _artifact(tmp_path, layer_size: object) -> str:
    config, layer = b"{}", b"x"
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor(config, "application/vnd.acme.config.v1+json"),
            "layers": [{**descriptor(layer, "application/vnd.acme.blob"), "size": layer_size}],
        }
    )
    src = oci_layout(
        tmp_path / "artifact", [config, layer, manifest], _index(_entry(descriptor(manifest, "application/vnd.oci.image.manifest.v1+json")))
    )
    return f"oci:{src}:1.0"


@pytest.mark.parametrize("size", [True, 1.0, "1", -1, None], ids=["true", "float", "string", "negative", "null"])
def test_size_must_be_an_integer(tmp_path, registry, size):
    """``"size": true`` was taken as 1 (bool is an int in Python) and the artifact was stored."""
    source = _artifact(tmp_path, size)
    _push_refused(registry, source, source.split(":")[1], "size")


def test_index_json_size_true(tmp_path, registry):
    desc, _ = app_manifest()
    src = oci_layout(tmp_path / "true", [], _index(_entry(desc, size=True)))
    _push_refused(registry, f"oci:{src}:1.0", str(src), "index.json", "size")


def test_integer_size_is_still_accepted(tmp_path, registry):
    source = _artifact(tmp_path, 1)
    proc = run_cli("push", registry, source, "--tag", "good/artifact:1")
    assert proc.returncode == 0, proc.stderr
    tags = json.loads(run_cli("tags", registry, "--format", "json").stdout)
    assert [(t["name"], t["tag"]) for t in tags] == [("good/artifact", "1")]


def test_schema_version_must_be_2(tmp_path, registry):
    desc, data = app_manifest()
    raw = dumps({**json.loads(data), "schemaVersion": True})
    src = oci_layout(tmp_path / "schema", [raw], _index(_entry(descriptor(raw, desc["mediaType"]))))
    _push_refused(registry, f"oci:{src}:1.0", str(src), "schemaVersion")
