"""Every integrity error of lfsreg/registry/view.py, on a registry that stock git damaged.

A registry is pushed by lfsreg, then cloned with stock ``git`` (no LFS filter: pointers are
plain files), damaged in one place, committed and pushed back, as anyone with write access
could. Each command that reads the damage must end in one error line that names the damaged
thing, with the documented exit code, and write nothing; a damaged ``diffids/`` record (only an
index) must cost deduplication and nothing else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from gitenv import isolated_git_env, run_git

import lfsreg
from lfsreg.digest import Digest
from lfsreg.registry import layout

IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))
NAME, TAG = "acme/base", "1.0"


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    path = tmp_path / "reg.git"
    lfsreg.Registry(str(path)).init()
    assert_ok(run_cli("push", path, IMAGE, "--tag", f"{NAME}:{TAG}"))
    return path


def _manifest_digest(reg: Path) -> Digest:
    return Digest.parse((_checkout(reg) / layout.NEW.tag_path(NAME, TAG)).read_text().strip())


def _checkout(reg: Path) -> Path:
    work = reg.parent / "work"
    if not work.exists():
        env = isolated_git_env(reg.parent / "git", lfs=False)
        run_git(["clone", "-q", str(reg), str(work)], cwd=reg.parent, env=env)
    return work


def _damage(reg: Path, paths: dict[str, bytes | None], message: str = "damage") -> None:
    """Write (bytes) or delete (None) files in a clone of ``reg``; commit and push them back."""
    work = _checkout(reg)
    env = isolated_git_env(reg.parent / "git", lfs=False)
    for rel, content in paths.items():
        target = work / rel
        if content is None:
            run_git(["rm", "-q", "-r", rel], cwd=work, env=env)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            run_git(["add", rel], cwd=work, env=env)
    run_git(["commit", "-qm", message], cwd=work, env=env)
    run_git(["push", "-q", "origin", "HEAD:main"], cwd=work, env=env)


def _head(reg: Path) -> str:
    return (reg / "refs" / "heads" / "main").read_text().strip()


def _manifest(reg: Path) -> dict:
    return json.loads((_checkout(reg) / layout.NEW.blob_path(_manifest_digest(reg))).read_bytes())


def _pull_fails(reg: Path, tmp_path: Path, image: str, code: int, *needles: str) -> str:
    out = tmp_path / "out.tar"
    before = _head(reg)
    line = assert_error(run_cli("pull", reg, image, "-o", f"docker-archive:{out}"), code, *needles)
    assert not out.exists()
    assert _head(reg) == before
    return line


# -- the format marker ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("marker", "needle"),
    [
        (None, "not an lfsreg registry"),
        (b'{"format": "lfsreg", "version": 5}\n', "format version 5 is not supported"),
        (b'{"format": "lfsreg", "version": "1"}\n', "format version '1' is not supported"),
        (b"[1]\n", "format version None"),
        (b"not json at all\n", "format version None"),
    ],
    ids=["missing", "newer", "string-version", "list", "not-json"],
)
def test_a_damaged_format_marker_is_not_a_registry(reg, tmp_path, marker, needle):
    _damage(reg, {layout.MARKER: marker})
    head = _head(reg)
    for argv in (["images", reg], ["push", reg, IMAGE, "--tag", "acme/other:1"]):
        assert_error(run_cli(*argv), 1, needle)
    assert _head(reg) == head  # a push did not "repair" a registry it does not understand


# -- tags and manifests -----------------------------------------------------------------------------
def test_a_missing_tag_names_the_tags_there_are(reg, tmp_path):
    proc = run_cli("pull", reg, f"{NAME}:2.0", "-o", f"docker-archive:{tmp_path / 'out.tar'}")
    assert_error(proc, 1, f"no image {NAME}:2.0")
    assert f"hint: tags of {NAME}: {TAG}" in proc.stderr


def test_a_missing_image_points_at_the_image_list(reg, tmp_path):
    proc = run_cli("pull", reg, "acme/nothing:1", "-o", f"docker-archive:{tmp_path / 'out.tar'}")
    assert_error(proc, 1, "no image acme/nothing:1")
    assert "lfsreg images" in proc.stderr


def test_a_digest_that_is_not_stored_is_not_found(reg, tmp_path):
    absent = "sha256:" + "0" * 64
    _pull_fails(reg, tmp_path, f"{NAME}@{absent}", 1, f"no manifest {absent}")


def test_a_corrupt_tag_file_is_named(reg, tmp_path):
    _damage(reg, {layout.NEW.tag_path(NAME, TAG): b"sha256:not-a-digest\n"})
    _pull_fails(reg, tmp_path, f"{NAME}:{TAG}", 1, f"tag file for {NAME}:{TAG} is corrupt")


def test_a_deleted_manifest_is_a_missing_blob(reg, tmp_path):
    digest = _manifest_digest(reg)
    _damage(reg, {layout.NEW.blob_path(digest): None})
    _pull_fails(reg, tmp_path, f"{NAME}:{TAG}", 1, f"{digest}")


def test_a_tampered_manifest_does_not_match_its_digest(reg, tmp_path):
    digest = _manifest_digest(reg)
    path = layout.NEW.blob_path(digest)
    data = (_checkout(reg) / path).read_bytes()
    _damage(reg, {path: data.replace(b"{", b"{ ", 1)})
    _pull_fails(reg, tmp_path, f"{NAME}:{TAG}", 1, f"stored blob {digest} does not match its digest")


# -- layers -------------------------------------------------------------------------------------------
def test_a_layer_without_its_pointer_is_named(reg, tmp_path):
    layer = Digest.parse(_manifest(reg)["layers"][0]["digest"])
    _damage(reg, {layout.NEW.layer_path(layer): None})
    _pull_fails(reg, tmp_path, f"{NAME}:{TAG}", 1, f"layer {layer} has no pointer in the registry")


@pytest.mark.parametrize("damage", ["size", "oid", "not-a-pointer"])
def test_a_pointer_that_disagrees_with_the_manifest_is_named(reg, tmp_path, damage):
    layer = Digest.parse(_manifest(reg)["layers"][0]["digest"])
    path = layout.NEW.layer_path(layer)
    text = (_checkout(reg) / path).read_text()
    size = text.split("size ")[1].strip()
    new = {
        "size": text.replace(f"size {size}", f"size {int(size) + 1}"),
        "oid": text.replace(layer.hex, "f" * 64),
        "not-a-pointer": "hello\n",
    }[damage]
    _damage(reg, {path: new.encode()})
    _pull_fails(reg, tmp_path, f"{NAME}:{TAG}", 1, f"pointer for layer {layer} does not match the manifest")


# -- diffids records: an index, damage costs deduplication only ----------------------------------------
def _records(reg: Path) -> dict[str, bytes]:
    root = _checkout(reg) / "diffids"
    return {str(p.relative_to(_checkout(reg))): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage", ["not-json", "no-pointer", "wrong-media-type"])
def test_a_damaged_diffids_record_is_ignored_and_rewritten(reg, tmp_path, damage):
    records = _records(reg)
    assert records
    rel, good = next(iter(records.items()))
    obj = json.loads(good)
    if damage == "not-json":
        bad = b"{ broken"
    elif damage == "no-pointer":
        obj["digest"] = "sha256:" + "e" * 64  # a blob the tree has no pointer for
        bad = json.dumps(obj).encode()
    else:
        obj["mediaType"] = "application/vnd.oci.image.config.v1+json"
        bad = json.dumps(obj).encode()
    _damage(reg, {rel: bad})
    proc = run_cli("-v", "push", reg, IMAGE, "--tag", f"{NAME}:again")
    assert_ok(proc)
    assert "ignoring a damaged diffids record" in proc.stderr
    shutil.rmtree(_checkout(reg))
    assert _records(reg)[rel] == good  # the push stored the record again, as it was
    out = tmp_path / "again.tar"
    assert_ok(run_cli("pull", reg, f"{NAME}:again", "-o", f"docker-archive:{out}"))


# -- listing: what is not an image or a tag is passed over ----------------------------------------------
def test_stray_entries_beside_images_and_tags_are_passed_over(reg, tmp_path):
    _damage(
        reg,
        {
            "repositories/README": b"not an image\n",
            f"{layout.NEW.tags_dir(NAME)}/old/note": b"a directory among the tags\n",
        },
    )
    proc = run_cli("images", "--format", "json", reg)
    assert_ok(proc)
    assert [(i["name"], i["tag"]) for i in json.loads(proc.stdout)] == [(NAME, TAG)]
    proc = run_cli("tags", reg, NAME)
    assert_ok(proc)
    assert TAG in proc.stdout and "old" not in proc.stdout
