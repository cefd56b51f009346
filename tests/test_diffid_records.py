"""``diffids/`` records are an index, never trusted over verified content (issue 8, defects 5 and 8).

Defect 5: a config naming a wrong diff_id for a compressed layer the registry already held
was accepted (the layer was reused unread), and every pull of the image then failed; into an
empty registry the same push was refused. Now only a record naming that very blob vouches for
its diff_id; otherwise the layer is read and checked, and the push refused, in both cases.

Defect 8: a damaged record (valid JSON, bad descriptor; a wrong ``uncompressedSize``) blocked
pushes and pulls of its layer or made push write a broken manifest. Now it is logged and
treated as absent (pull measures the layer instead).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from conftest import assert_error, assert_ok, check_docker_archive_output, run_cli, snapshot, tree_files, verify_layout
from hostile import APP, FIXTURES, descriptor, dumps, edit_registry

from lfsreg.registry import layout

L1_DIFF = "sha256:6f1e0606c7d325b8b9e4ac70648f1a4358ea4cf4afb0a7bf3822c468b08ec586"
L3_DIFF = "sha256:1d0199967b5afc041d42dc6440680146534036f0d8b6b1938f6e46cc378e3e2f"
L2_BLOB = "sha256:c2ad038f461f58cfaf3423eafe6ab53e3ce1b039cbcdf592ab60209390603283"
L3_BLOB = "sha256:6d6f4da393be422328bebd4a6560f372cafa0e27c77db1d8aba3ce67c98fe953"
L3_RECORD = layout.NEW.hex_path("diffids", L3_DIFF[7:])
GOOD = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": L3_BLOB, "size": 352, "uncompressedSize": 6144}


def _app_with_diff_id(tmp_path, index: int, wrong: str):
    """app.oci whose config names ``wrong`` as the diff_id of layer ``index`` (its blob unchanged)."""
    src = tmp_path / "wrong.oci"
    shutil.copytree(APP, src)
    blobs = src / "blobs" / "sha256"
    (entry,) = json.loads((src / "index.json").read_bytes())["manifests"]
    manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    config["rootfs"]["diff_ids"][index] = wrong
    config_bytes = dumps(config)
    manifest["config"] = descriptor(config_bytes, manifest["config"]["mediaType"])
    manifest_bytes = dumps(manifest)
    for data in (config_bytes, manifest_bytes):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    entry.update(descriptor(manifest_bytes, entry["mediaType"]))
    (src / "index.json").write_bytes(dumps({"schemaVersion": 2, "manifests": [entry]}))
    return src, manifest["layers"][index]["digest"]


def test_populated_registry_holds_the_record(populated):
    """Precondition of the tests below: the push wrote the diffids record of each gzip layer."""
    assert json.loads(tree_files(populated, L3_RECORD)[L3_RECORD]) == GOOD


@pytest.mark.parametrize("wrong", [L1_DIFF, "sha256:" + "5" * 64], ids=["another-layers-diff-id", "unknown"])
@pytest.mark.parametrize("state", ["empty", "populated"])
def test_wrong_diff_id_for_a_compressed_layer_is_refused(tmp_path, registry, populated, state, wrong):
    repo = registry if state == "empty" else populated
    src, layer = _app_with_diff_id(tmp_path, 2, wrong)
    before = snapshot(repo)
    proc = run_cli("push", repo, f"oci:{src}:1.0", "--tag", "bad/diffid:1")
    assert_error(proc, 1, layer)
    assert snapshot(repo) == before


def test_compressed_layer_without_a_record_is_read_and_checked(tmp_path, populated):
    """A blob the registry holds but no record vouches for (stored by another tool): it is
    read and checked, the push succeeds, and the record is written (repairing the index)."""
    records = {p: None for p in tree_files(populated, "diffids/")}
    edit_registry(populated, records, tmp_path)
    assert_ok(run_cli("push", populated, f"oci:{APP}:1.0", "--tag", "acme/again:1"))
    assert set(tree_files(populated, "diffids/")) == set(records)
    out = tmp_path / "out.tar"
    assert_ok(run_cli("pull", populated, "acme/again:1", "-o", f"docker-archive:{out}"))
    check_docker_archive_output(out)


DAMAGED = {
    "not-an-object": [],
    "digest-not-a-string": {**GOOD, "digest": 5},
    "size-true": {**GOOD, "size": True},
    "not-a-layer-type": {**GOOD, "mediaType": "text/plain"},
    "plain-type-for-gzip-blob": {**GOOD, "mediaType": "application/vnd.oci.image.layer.v1.tar"},
    "size-disagrees-with-pointer": {**GOOD, "size": 999},
    "blob-not-in-registry": {**GOOD, "digest": "sha256:" + "a" * 64},
    "uncompressed-size-true": {**GOOD, "uncompressedSize": True},
    "uncompressed-size-negative": {**GOOD, "uncompressedSize": -5},
    "uncompressed-size-smaller": {**GOOD, "uncompressedSize": 6000},
    "uncompressed-size-larger": {**GOOD, "uncompressedSize": 7000},
    "uncompressed-size-off-by-one": {**GOOD, "uncompressedSize": 6145},
    "deeply-nested": json.loads("[" * 200 + "]" * 200),
}


@pytest.mark.parametrize("record", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_record_is_only_a_missing_index_entry(tmp_path, populated, record):
    edit_registry(populated, {L3_RECORD: json.dumps(record).encode()}, tmp_path)
    # Pulls of the image that uses the layer work, in every output.
    archive = tmp_path / "app.tar"
    assert_ok(run_cli("pull", populated, "acme/app:1.0", "-o", f"docker-archive:{archive}"))
    (entry,) = check_docker_archive_output(archive)
    assert entry.diff_ids[2] == L3_DIFF
    assert_ok(run_cli("pull", populated, "acme/app:1.0", "-o", f"oci:{tmp_path / 'layout'}"))
    verify_layout(tmp_path / "layout")
    # Pushing the same image from a docker save (uncompressed layers, reused by diff_id) works,
    # and the image it writes pulls again.
    assert_ok(run_cli("push", populated, f"docker-archive:{FIXTURES / 'app.docker.tar'}", "--tag", "acme/saved:1"))
    for out in (f"docker-archive:{tmp_path / 'saved.tar'}", f"oci:{tmp_path / 'saved'}"):
        assert_ok(run_cli("pull", populated, "acme/saved:1", "-o", out))
    (entry,) = check_docker_archive_output(tmp_path / "saved.tar")
    assert entry.diff_ids[2] == L3_DIFF
