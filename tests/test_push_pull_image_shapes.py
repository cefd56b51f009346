"""Images whose shape push or pull must refuse or carry as they are (lfsreg/ops/push.py, pull.py).

OCI layouts are written by hand from JSON documents (tests/hostile.py, none of lfsreg's
writers): a manifest and config that disagree on the number of layers, a layer of a media type
that is no layer, an uncompressed layer that is not its diff_id, a config announced larger than
any config, an OCI artifact (a config that is no image config), an index of indexes. A refused
push writes nothing; an artifact travels byte for byte to ``oci:`` and is refused, with the way
out, by ``docker-archive:``.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from conftest import assert_error, assert_ok, run_cli
from hostile import OCI_INDEX, OCI_MANIFEST, app_manifest, descriptor, digest_of, dumps, oci_layout

TAR = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
ARTIFACT_CONFIG = "application/vnd.acme.rocket.config.v1+json"
ARTIFACT_LAYER = "application/vnd.acme.rocket.docs.layer.v1+tar"


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _config(diff_ids: list[str]) -> bytes:
    return dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}})


def _image(tmp_path: Path, name: str, config: bytes, layers: list[tuple[str, bytes]], *, config_type: str = CONFIG, **extra) -> Path:
    """An OCI layout whose one image (tag 1.0) has ``config`` and ``layers`` ((media type, bytes))."""
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {**descriptor(config, config_type), **extra.get("config_desc", {})},
            "layers": [descriptor(data, mt) for mt, data in layers],
        }
    )
    entry = {**descriptor(manifest, OCI_MANIFEST), "annotations": {"org.opencontainers.image.ref.name": "1.0"}}
    blobs = [config, manifest, *(data for _, data in layers)]
    return oci_layout(tmp_path / name, blobs, {"schemaVersion": 2, "manifests": [entry]})


def _heads(reg: Path) -> list[str]:
    return sorted(p.name + "=" + p.read_text() for p in (reg / "refs" / "heads").iterdir())


def _push_refused(registry: Path, layout: Path, *needles: str) -> None:
    before = _heads(registry)
    assert_error(run_cli("push", registry, f"oci:{layout}:1.0", "--tag", "acme/shape:1"), 1, *needles)
    assert _heads(registry) == before
    assert not [p for p in (registry / "lfs").rglob("*") if p.is_file() and "objects" in p.parts]  # no layer stored


# -- refused on push -----------------------------------------------------------------------------------
def test_a_manifest_with_more_layers_than_its_config_is_refused(tmp_path, registry):
    one, two = _tar("a", b"a\n"), _tar("b", b"b\n")
    layout = _image(tmp_path, "count.oci", _config([digest_of(one)]), [(TAR, one), (TAR, two)])
    _push_refused(registry, layout, "has 2 layers, its config 1")


def test_a_layer_of_no_layer_media_type_is_refused(tmp_path, registry):
    layer = _tar("a", b"a\n")
    layout = _image(tmp_path, "mediatype.oci", _config([digest_of(layer)]), [("application/x-not-a-layer", layer)])
    _push_refused(registry, layout, "unsupported layer media type 'application/x-not-a-layer'")


def test_an_uncompressed_layer_that_is_not_its_diff_id_is_refused(tmp_path, registry):
    layer, other = _tar("a", b"a\n"), _tar("b", b"b\n")
    layout = _image(tmp_path, "diffid.oci", _config([digest_of(other)]), [(TAR, layer)])
    _push_refused(registry, layout, "uncompressed layer does not match its diff_id", digest_of(other))


def test_a_config_announced_too_large_is_refused_unread(tmp_path, registry):
    layer = _tar("a", b"a\n")
    config = _config([digest_of(layer)])
    layout = _image(tmp_path, "huge.oci", config, [(TAR, layer)], config_desc={"size": 1 << 30})
    _push_refused(registry, layout, "is too large (1073741824 bytes) for a manifest or config")


# -- an artifact: carried verbatim ---------------------------------------------------------------------
def test_an_artifact_goes_to_oci_byte_for_byte_and_not_to_docker_archive(tmp_path, registry):
    doc = b"# rocket manual\n" * 50
    config = dumps({"rocket": "v1"})
    layout = _image(tmp_path, "artifact.oci", config, [(ARTIFACT_LAYER, doc)], config_type=ARTIFACT_CONFIG)
    assert_ok(run_cli("push", registry, f"oci:{layout}:1.0", "--tag", "acme/rocket:1"))
    out = tmp_path / "out.oci"
    assert_ok(run_cli("pull", registry, "acme/rocket:1", "-o", f"oci:{out}"))
    (entry,) = json.loads((out / "index.json").read_bytes())["manifests"]
    manifest = json.loads((out / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
    assert manifest["config"]["mediaType"] == ARTIFACT_CONFIG
    assert (out / "blobs" / "sha256" / digest_of(config).split(":")[1]).read_bytes() == config
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == ARTIFACT_LAYER and layer["digest"] == digest_of(doc)
    assert (out / "blobs" / "sha256" / digest_of(doc).split(":")[1]).read_bytes() == doc
    archive = tmp_path / "out.tar"
    proc = run_cli("pull", registry, "acme/rocket:1", "-o", f"docker-archive:{archive}")
    assert_error(proc, 2, f"not a container image (config {ARTIFACT_CONFIG})", "oci:")
    assert not archive.exists()


# -- an index of indexes --------------------------------------------------------------------------------
def test_an_index_of_indexes_goes_to_oci_but_not_to_docker_archive(tmp_path, registry):
    child, _ = app_manifest()
    inner = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]})
    outer = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(inner)]})
    entry = {**descriptor(outer), "annotations": {"org.opencontainers.image.ref.name": "1.0"}}
    layout = oci_layout(tmp_path / "nested.oci", [inner, outer], {"schemaVersion": 2, "manifests": [entry]})
    assert_ok(run_cli("push", registry, f"oci:{layout}:1.0", "--tag", "acme/nested:1"))
    out = tmp_path / "out.oci"
    assert_ok(run_cli("pull", registry, "acme/nested:1", "-o", f"oci:{out}"))
    (got,) = json.loads((out / "index.json").read_bytes())["manifests"]
    assert got["digest"] == digest_of(outer)
    archive = tmp_path / "out.tar"
    assert_error(run_cli("pull", registry, "acme/nested:1", "-o", f"docker-archive:{archive}"), 1, "nested indexes cannot be written")
    assert not archive.exists()


def test_one_tag_for_several_images_is_bad_usage(tmp_path, registry):
    child, _ = app_manifest()
    entries = [{**child, "annotations": {"org.opencontainers.image.ref.name": f"{i}.0"}} for i in range(2)]
    layout = oci_layout(tmp_path / "two.oci", [], {"schemaVersion": 2, "manifests": entries})
    before = _heads(registry)
    assert_error(run_cli("push", registry, f"oci:{layout}", "--tag", "acme/one:1"), 2, "the sources hold 2")
    assert _heads(registry) == before
