"""``lfsreg keygen --sign``, ``lfsreg sign``, ``pull --verify-key`` and ``inspect --signatures`` (in-process).

Signatures are cosign's (docs/format.md "Signatures"): a ``NAME:sha256-<hex>.sig`` manifest whose
layers are simple-signing payloads, stored as git files under ``blobs/`` (never LFS), with the
base64 signature in the ``dev.cosignproject.cosign/signature`` annotation.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from conftest import FIXTURES, assert_error, assert_ok, commit_count, lfs_objects, run_cli, snapshot, tree_files

import lfsreg
from lfsreg.registry import layout
from lfsreg.signing import cosign

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two signing key pairs made by ``lfsreg keygen --sign``: P-256 (default) and Ed25519."""
    base = tmp_path_factory.mktemp("keys")
    assert_ok(run_cli("keygen", "--sign", "--out", base / "p256"))
    assert_ok(run_cli("keygen", "--sign", "--type", "ed25519", "--out", base / "ed"))
    return base


@pytest.fixture
def signed(tmp_path, keys):
    """A registry with acme/app:1.0 (single) and acme/multi:1.0 (an index), app signed by the P-256 key."""
    repo = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(repo))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.push([f"oci:{FIXTURES / 'multi.oci'}:1.0"], tags=["acme/multi:1.0"])
    reg.close()
    assert_ok(run_cli("sign", repo, "acme/app:1.0", "--key", keys / "p256", "-a", "build=42"))
    return repo


def _digest(repo, image):
    with lfsreg.Registry(str(repo)) as reg:
        return reg.view().resolve(lfsreg.ImageRef.parse(image))


def _sig_manifest(repo, name, digest):
    files = tree_files(repo, "")
    tag = files[f"{layout.NEW.tags_dir(name)}/{cosign.signature_tag(digest)}"].decode().strip()
    hexdigest = tag.split(":")[1]
    return json.loads(files[layout.NEW.hex_path("blobs", hexdigest)]), files


def test_keygen_sign_writes_pkcs8_and_public_pem(keys, tmp_path):
    for name, header in (("p256", b"-----BEGIN PRIVATE KEY-----"), ("ed", b"-----BEGIN PRIVATE KEY-----")):
        assert (keys / name).read_bytes().startswith(header)
        assert stat.S_IMODE(os.stat(keys / name).st_mode) == 0o600
        assert (keys / f"{name}.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    proc = run_cli("keygen", "--sign", "--out", tmp_path / "enc", "--format", "json", env={"LFSREG_KEY_PASSWORD": "s3cret"})
    assert proc.returncode == 2  # keygen has no --format: a usage error, nothing written
    assert not (tmp_path / "enc").exists()
    assert_ok(run_cli("keygen", "--sign", "--out", tmp_path / "enc", env={"LFSREG_KEY_PASSWORD": "s3cret"}))
    assert (tmp_path / "enc").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert_error(run_cli("keygen", "--sign", "--out", tmp_path / "enc"), 1, "already exists")


def test_sign_stores_cosign_signature_as_git_files(signed, keys):
    digest = _digest(signed, "acme/app:1.0")
    manifest, files = _sig_manifest(signed, "acme/app", digest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIMPLESIGNING
    hexdigest = layer["digest"].split(":")[1]
    payload = files[layout.NEW.hex_path("blobs", hexdigest)]  # a git file ...
    assert not any(p.startswith(layout.NEW.hex_path("layers", hexdigest)) for p in files)  # ... not an LFS pointer
    doc = json.loads(payload)
    assert doc == {
        "critical": {
            "identity": {"docker-reference": "acme/app"},
            "image": {"docker-manifest-digest": str(digest)},
            "type": "cosign container image signature",
        },
        "optional": {"build": "42"},
    }
    public = lfsreg.api.load_public_keys([str(keys / "p256.pub")])[0]
    assert public.verify(base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"]), payload)


def test_sign_adds_to_existing_signatures_and_is_idempotent(signed, keys):
    digest = _digest(signed, "acme/app:1.0")
    before = commit_count(signed)
    proc = run_cli("sign", signed, "acme/app:1.0", "--key", keys / "p256", "-a", "build=42", "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["commit"] is None and commit_count(signed) == before  # the same signature again: nothing
    assert_ok(run_cli("sign", signed, "acme/app:1.0", "--key", keys / "ed"))
    manifest, _ = _sig_manifest(signed, "acme/app", digest)
    assert len(manifest["layers"]) == 2  # added beside the first, not replacing it
    for pub in ("p256.pub", "ed.pub"):
        out = signed.parent / f"out-{pub}"
        assert_ok(run_cli("pull", signed, "acme/app:1.0", "--verify-key", keys / pub, "-o", f"oci:{out}"))


def test_one_commit_for_the_whole_command_and_recursive(signed, keys):
    before = commit_count(signed)
    proc = run_cli("sign", signed, "acme/multi:1.0", "acme/app:1.0", "--recursive", "--key", keys / "ed", "--format", "json")
    assert_ok(proc)
    assert commit_count(signed) == before + 1
    doc = json.loads(proc.stdout)
    index = json.loads(tree_files(signed, "blobs/")[layout.NEW.hex_path("blobs", doc["signed"][0]["digest"][7:])])
    children = {m["digest"] for m in index["manifests"]}
    assert {s["digest"] for s in doc["signed"]} == {doc["signed"][0]["digest"], *children, str(_digest(signed, "acme/app:1.0"))}
    child = next(iter(children))
    out = signed.parent / "child"
    assert_ok(run_cli("pull", signed, f"acme/multi@{child}", "--verify-key", keys / "ed.pub", "-o", f"oci:{out}"))


def test_signing_key_from_environment_is_never_printed(signed, keys):
    text = (keys / "ed").read_text()
    proc = run_cli("sign", signed, "acme/multi:1.0", env={"LFSREG_SIGNING_KEY": text})
    assert_ok(proc)
    body = text.splitlines()[1]
    assert body not in proc.stdout + proc.stderr
    bad = text.replace(body, body[:24])  # a truncated key: not a key
    proc = run_cli("sign", signed, "acme/multi:1.0", env={"LFSREG_SIGNING_KEY": bad})
    assert_error(proc, 2, "LFSREG_SIGNING_KEY")
    assert body[:24] not in proc.stdout + proc.stderr
    assert_error(run_cli("sign", signed, "acme/multi:1.0", env={"LFSREG_SIGNING_KEY": ""}), 2, "no signing key")


def test_encrypted_key_needs_its_password(signed, tmp_path):
    assert_ok(run_cli("keygen", "--sign", "--out", tmp_path / "enc", env={"LFSREG_KEY_PASSWORD": "right"}))
    state = snapshot(signed)
    assert_error(run_cli("sign", signed, "acme/multi:1.0", "--key", tmp_path / "enc"), 2, "encrypted")
    assert_error(run_cli("sign", signed, "acme/multi:1.0", "--key", tmp_path / "enc", env={"LFSREG_KEY_PASSWORD": "wrong"}), 2, "password")
    assert snapshot(signed) == state
    assert_ok(run_cli("sign", signed, "acme/multi:1.0", "--key", tmp_path / "enc", env={"LFSREG_KEY_PASSWORD": "right"}))


def test_bad_sign_input_writes_nothing(signed, keys):
    state = snapshot(signed)
    assert_error(run_cli("sign", signed, "acme/app:1.0", "acme/nope:1", "--key", keys / "p256"), 1, "acme/nope:1")
    assert_error(run_cli("sign", signed, "acme/app:1.0", "--key", keys / "p256.pub"), 2, "not a PEM private key")
    assert_error(run_cli("sign", signed, "acme/app:1.0", "--key", keys / "p256", "-a", "novalue"), 2, "KEY=VALUE")
    assert snapshot(signed) == state


def test_pull_verify_key_refuses_before_writing(signed, keys, tmp_path):
    out = tmp_path / "out.tar"
    line = assert_error(run_cli("pull", signed, "acme/app:1.0", "--verify-key", keys / "ed.pub", "-o", f"docker-archive:{out}"), 1)
    assert "acme/app@sha256:" in line and "needs a valid signature by a --verify-key key" in line and "not signed by a trusted key" in line
    line = assert_error(run_cli("pull", signed, "acme/multi:1.0", "--verify-key", keys / "p256.pub", "-o", f"docker-archive:{out}"), 1)
    assert "acme/multi@sha256:" in line and "has none" in line
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["reg.git"]
    assert_error(run_cli("pull", signed, "acme/app:1.0", "--verify-key", keys / "p256", "-o", f"oci:{out}"), 2, "not a PEM public key")
    either = ("--verify-key", keys / "ed.pub", "--verify-key", keys / "p256.pub")
    assert_ok(run_cli("pull", signed, "acme/app:1.0", *either, "-o", f"oci:{out}"))


def test_inspect_signatures(signed, keys):
    proc = run_cli("inspect", signed, "acme/app:1.0", "--signatures", "--format", "json")
    assert_ok(proc)
    [row] = json.loads(proc.stdout)["signatures"]
    assert row["valid"] is False and row["keyId"] is None and row["problem"] is None  # no key given: nothing to check
    proc = run_cli("inspect", signed, "acme/app:1.0", "--verify-key", keys / "p256.pub", "--format", "json")
    [row] = json.loads(proc.stdout)["signatures"]
    assert row["valid"] is True and row["keyId"].startswith("sha256:") and row["annotations"] == {"build": "42"}
    proc = run_cli("inspect", signed, "acme/app:1.0", "--verify-key", keys / "ed.pub")
    assert_ok(proc)
    assert "not signed by a trusted key" in proc.stdout
    proc = run_cli("inspect", signed, "acme/multi:1.0", "--signatures")
    assert "signatures:  none" in proc.stdout


def test_signatures_survive_verify_copy_and_listing(signed, keys, tmp_path):
    assert_ok(run_cli("verify", signed))
    assert_ok(run_cli("images", signed))
    dst = tmp_path / "copy.git"
    assert_ok(run_cli("init", dst))
    assert_ok(run_cli("copy", signed, dst))
    objects = {p.name for p in lfs_objects(dst)}
    digest = _digest(dst, "acme/app:1.0")
    manifest, files = _sig_manifest(dst, "acme/app", digest)
    payload = manifest["layers"][0]["digest"].split(":")[1]
    assert payload not in objects and layout.NEW.hex_path("blobs", payload) in files
    assert_ok(run_cli("verify", dst))
    assert_ok(run_cli("pull", dst, "acme/app:1.0", "--verify-key", keys / "p256.pub", "-o", f"oci:{tmp_path / 'o'}"))
    assert_ok(run_cli("gc", dst, "--grace", "0"))  # the rewritten branch keeps the payloads (git files the .sig tags need)
    assert_ok(run_cli("verify", dst))
    assert_ok(run_cli("pull", dst, "acme/app:1.0", "--verify-key", keys / "p256.pub", "-o", f"oci:{tmp_path / 'o2'}"))
