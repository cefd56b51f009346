"""``verify``'s fast path (lfsreg/ops/verify_walk.py ``Walk.quick``) finds exactly what the full check finds.

One registry holds a sound image and many images each damaged (or merely unusual) in one way
the fast path must not vouch for: descriptors, configs and pointers built by hand and
committed with stock git. ``verify`` (and ``verify --deep``) runs twice, with the fast path
and with it switched off: the reports are the same, line for line, and the damaged images
are the ones named. Unusual but sound images (a pointer in an older spelling, annotations,
unknown members, a layer listed twice) are not reported by either.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fixture, run_cli
from gitenv import cli_env
from hostile import edit_registry

import lfsreg
from lfsreg.ops import verify_walk
from lfsreg.registry import layout

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: the diff_id is the layer's digest
SIGNATURE_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Image:
    """A hand-built image: its layers (as LFS objects and pointers), config and manifest, then edits."""

    def __init__(self, name: str, layers: list[bytes]) -> None:
        self.name = name
        self.layers = layers
        self.pointers = {_sha(d): POINTER.format(oid=_sha(d), size=len(d)).encode() for d in layers}
        self.config: dict[str, Any] = {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(d)}" for d in layers]},
        }
        self.config_type = OCI_CONFIG
        self.config_bytes: bytes | None = None  # set: stored as is instead of the config above
        self.manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        self.edit: Callable[[dict[str, Any]], None] = lambda m: None
        self.store_config = True
        self.tampered: set[str] = set()
        self.index: Callable[[dict[str, Any]], None] | None = None
        self.payload: bytes | None = None  # a signature payload layer, stored as a git file (docs/format.md)
        self.store_payload = True

    def files(self, lfs: Path) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for data in self.layers:
            oid = _sha(data)
            (lfs / oid[:2] / oid[2:4]).mkdir(parents=True, exist_ok=True)
            (lfs / oid[:2] / oid[2:4] / oid).write_bytes(data)
            out[layout.NEW.hex_path("layers", oid)] = self.pointers[oid]
        config = self.config_bytes if self.config_bytes is not None else _dumps(self.config)
        if self.store_config:  # tampered: other bytes under the digest
            out[layout.NEW.hex_path("blobs", _sha(config))] = config.replace(b"amd64", b"AMD64" if "config" in self.tampered else b"amd64")
        manifest = dict(self.manifest)
        manifest["config"] = {"mediaType": self.config_type, "digest": f"sha256:{_sha(config)}", "size": len(config)}
        manifest["layers"] = [{"mediaType": LAYER, "digest": f"sha256:{_sha(d)}", "size": len(d)} for d in self.layers]
        if self.payload is not None:
            manifest["layers"].append({"mediaType": SIGNATURE_PAYLOAD, "digest": f"sha256:{_sha(self.payload)}", "size": len(self.payload)})
            if self.store_payload:
                out[layout.NEW.hex_path("blobs", _sha(self.payload))] = self.payload
        self.edit(manifest)
        data = _dumps(manifest)
        out[layout.NEW.hex_path("blobs", _sha(data))] = data + b" " * ("manifest" in self.tampered)
        if self.index is not None:  # the tag names an index of this manifest instead
            child = {"mediaType": OCI_MANIFEST, "digest": f"sha256:{_sha(data)}", "size": len(data)}
            self.index(child)
            data = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]})
            out[layout.NEW.hex_path("blobs", _sha(data))] = data
        out[f"{layout.NEW.tags_dir(self.name)}/1"] = f"sha256:{_sha(data)}\n".encode()
        return out


def _cases() -> list[tuple[_Image, bool]]:
    """Every image, and whether verify must report it."""
    shared = b"a layer two images share\n"
    out: list[tuple[_Image, bool]] = []

    def case(name: str, bad: bool, layers: list[bytes] | None = None) -> _Image:
        image = _Image(f"case/{name}", layers if layers is not None else [f"layer of {name}\n".encode()])
        out.append((image, bad))
        return image

    case("sound", False, [b"first\n", b"second\n"])
    case("annotated", False).manifest["annotations"] = {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"}
    case("unknown-members", False).manifest.update(artifactType="application/x-test", extra={"deep": [1, {"x": None}]})
    twice = case("layer-twice", False, [b"twice\n"])
    twice.edit = lambda m: m.update(layers=m["layers"] * 2)
    twice.config["rootfs"]["diff_ids"] *= 2
    old = case("old-pointer-spelling", False)
    (oid,) = old.pointers
    old.pointers[oid] = old.pointers[oid].replace(b"git-lfs.github.com/spec/v1", b"hawser.github.com/spec/v1")
    case("no-media-type", False).edit = lambda m: m.pop("mediaType")
    artifact = case("artifact-config", False)
    artifact.config_type, artifact.config_bytes = "application/x-anything", b"not json at all"
    case("sha512-diff-id", False).config["rootfs"]["diff_ids"] = ["sha512:" + "ab" * 64]

    signed = case("signature-payload", False)
    signed.payload = b'{"critical":{}}'
    signed.config["rootfs"]["diff_ids"].append(f"sha256:{_sha(signed.payload)}")
    unsigned = case("signature-payload-missing", True)
    unsigned.payload, unsigned.store_payload = b'{"critical":{"x":1}}', False
    unsigned.config["rootfs"]["diff_ids"].append(f"sha256:{_sha(unsigned.payload)}")

    case("config-size", True).edit = lambda m: m["config"].update(size=m["config"]["size"] + 1)
    case("layer-size", True).edit = lambda m: m["layers"][0].update(size=m["layers"][0]["size"] + 1)
    case("diff-ids-short", True, [b"one\n", b"two\n"]).config["rootfs"]["diff_ids"].pop()
    case("os-not-a-string", True).config["os"] = 5
    case("bad-diff-id", True).config["rootfs"]["diff_ids"] = ["sha256:XYZ"]
    case("schema-true", True).manifest["schemaVersion"] = True
    case("schema-float", True).manifest["schemaVersion"] = 2.0
    case("annotation-number", True).manifest["annotations"] = {"n": 1}
    case("layer-annotated", False).edit = lambda m: m["layers"][0].update(annotations={"org.example": "x"})
    case("layer-annotation-number", True).edit = lambda m: m["layers"][0].update(annotations={"n": 1})
    case("in-an-index", False).index = lambda child: None
    case("index-child-size", True).index = lambda child: child.update(size=child["size"] - 1)
    case("config-not-object", True).edit = lambda m: m.update(config=m["config"]["digest"])
    case("layer-negative-size", True).edit = lambda m: m["layers"][0].update(size=-1)
    case("platform-string", True).edit = lambda m: m["layers"][0].update(platform="linux")
    case("size-bool", True).edit = lambda m: m["config"].update(size=True)
    case("index-media-type", False).manifest["mediaType"] = OCI_INDEX  # an empty index
    case("too-deep", True).manifest["junk"] = json.loads("[" * 70 + "]" * 70)
    case("config-missing", True).store_config = False
    case("manifest-tampered", True).tampered.add("manifest")
    case("config-tampered", True).tampered.add("config")
    garbage = case("pointer-garbage", True)
    (oid,) = garbage.pointers
    garbage.pointers[oid] += b"trailing\n"
    other = case("pointer-other-size", True)
    (oid,) = other.pointers
    other.pointers[oid] = other.pointers[oid].replace(b"size ", b"size 1")
    case("config-not-json", True).config_bytes = b"{not json"
    case("shared-a", False, [shared, b"only a\n"])
    case("shared-b", True, [shared]).config["rootfs"]["diff_ids"] = []
    case("shared-c", True, [shared, b"only c\n"]).config["os"] = []
    case("shared-d", False, [shared, b"only c\n"])
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fastpath")
    repo = tmp / "reg.git"
    proc = run_cli("push", repo, "docker-archive:" + str(fixture("app.docker.tar")), env=cli_env(tmp))
    assert proc.returncode == 0, proc.stderr
    files: dict[str, bytes | None] = {}
    for image, _ in _cases():
        files.update(image.files(repo / "lfs" / "objects"))
    edit_registry(repo, files, tmp)
    # The object of "only c" is gone: it is reported for the first tag that needs it, a damaged one.
    gone = _sha(b"only c\n")
    (repo / "lfs" / "objects" / gone[:2] / gone[2:4] / gone).unlink()
    return repo


def _report(repo: Path, *, deep: bool = False) -> tuple[list[str], tuple[int, int, int, int]]:
    reg = lfsreg.Registry(str(repo))
    try:
        report = reg.verify(deep=deep)
    finally:
        reg.close()
    return [str(p) for p in report.problems], (report.tags, report.blobs, report.objects, report.object_bytes)


@pytest.mark.parametrize("deep", [False, True], ids=["verify", "deep"])
def test_the_fast_path_reports_what_the_full_check_reports(registry, monkeypatch, deep):
    used: list[bool] = []
    quick = verify_walk.Walk.quick

    def counted(self: verify_walk.Walk, *args: Any) -> bool:
        used.append(quick(self, *args))
        return used[-1]

    monkeypatch.setattr(verify_walk.Walk, "quick", counted)
    fast = _report(registry, deep=deep)
    assert sum(used) >= 5, used  # the sound images did go through the fast path
    monkeypatch.setattr(verify_walk.Walk, "quick", lambda self, *args: False)
    full = _report(registry, deep=deep)
    assert fast == full
    if not deep:  # a deep check also reads the layers: the sha512 diff_id cannot be an uncompressed layer's
        assert {line.split(":")[0] for line in fast[0]} == {image.name for image, bad in _cases() if bad}
    gone, size = _sha(b"only c\n"), len(b"only c\n")
    assert [line for line in fast[0] if gone in line and "LFS object" in line] == [
        f"case/shared-c:1: LFS object sha256:{gone} ({size} bytes): missing"
    ]


def test_a_copy_of_the_registry_without_the_damaged_images_verifies(registry, tmp_path):
    """The sound and unusual images alone: nothing to report, through either path."""
    repo = tmp_path / "reg.git"
    shutil.copytree(registry, repo, symlinks=True)
    gone = _sha(b"only c\n")
    (repo / "lfs" / "objects" / gone[:2] / gone[2:4] / gone).write_bytes(b"only c\n")
    edit_registry(repo, {f"{layout.NEW.tags_dir(image.name)}/1": None for image, bad in _cases() if bad}, tmp_path)
    problems, counts = _report(repo)
    assert problems == []
    assert counts[0] == 1 + sum(1 for _, bad in _cases() if not bad)


def test_du_counts_no_lfs_object_for_a_signature_payload(registry, tmp_path, monkeypatch):
    """du's walk reads plain manifests the cheap way too: a payload layer (a git file) is no LFS object there either."""
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    reg = lfsreg.Registry(str(registry))
    try:
        usage = reg.du(image_globs=["case/signature-payload"])
    finally:
        reg.close()
    (row,) = usage.tags
    assert row.objects == 1 and row.size == len(b"layer of signature-payload\n")
