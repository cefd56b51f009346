"""Forged and tampered signatures: each refused by ``pull --verify-key``, exit 1, one line naming the image, nothing written.

The forger has push access to the registry (they commit raw tree changes, as anyone with a
deploy key can) but not the trusted private key.
"""

from __future__ import annotations

import base64
import json

import pytest
from conftest import assert_error, assert_ok, run_cli, snapshot
from signing_help import digest_of, publish, put_signature_image, sig_manifest, signed_registry, stored_signatures

from lfsreg.registry import layout
from lfsreg.signing import cosign


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("attack-keys")
    assert_ok(run_cli("keygen", "--sign", "--out", base / "trusted"))
    assert_ok(run_cli("keygen", "--sign", "--out", base / "other"))
    return base


@pytest.fixture
def repo(tmp_path, keys):
    """acme/app:1.0 and acme/tool:2.0, both signed by the trusted key."""
    path = signed_registry(tmp_path / "reg.git", ("app.oci:1.0", "acme/app:1.0"), ("tool.oci", "acme/tool:2.0"))
    assert_ok(run_cli("sign", path, "acme/app:1.0", "acme/tool:2.0", "--key", keys / "trusted"))
    return path


def _refused(repo, keys, tmp_path, *needles):
    """``pull acme/app:1.0 --verify-key trusted.pub`` fails naming the image and ``needles``; nothing written anywhere."""
    state = snapshot(repo)
    out = tmp_path / "out"
    proc = run_cli("pull", repo, "acme/app:1.0", "--verify-key", keys / "trusted.pub", "-o", f"oci:{out}")
    line = assert_error(proc, 1, "acme/app@sha256:", *needles)
    assert not out.exists()
    assert snapshot(repo) == state
    return line


def test_untampered_passes(repo, keys, tmp_path):
    assert_ok(run_cli("pull", repo, "acme/app:1.0", "--verify-key", keys / "trusted.pub", "-o", f"oci:{tmp_path / 'out'}"))


def test_signature_of_another_digest_moved_onto_this_tag(repo, keys, tmp_path):
    app, tool = digest_of(repo, "acme/app:1.0"), digest_of(repo, "acme/tool:2.0")
    _, files = sig_manifest(repo, "acme/tool", tool)  # the tool's .sig manifest tagged as the app's: a valid signature, of another image
    publish(
        repo,
        {layout.NEW.tag_path("acme/app", cosign.signature_tag(app)): files[layout.NEW.tag_path("acme/tool", cosign.signature_tag(tool))]},
    )
    _refused(repo, keys, tmp_path, f"names {tool}")


def test_payload_edited_after_signing(repo, keys, tmp_path):
    app = digest_of(repo, "acme/app:1.0")
    [(payload, signature)] = stored_signatures(repo, "acme/app", app)
    doc = json.loads(payload)
    doc["optional"] = {"approved": "yes"}
    edited = json.dumps(doc, separators=(",", ":")).encode()
    put_signature_image(repo, "acme/app", app, [(edited, base64.b64encode(signature).decode())])
    _refused(repo, keys, tmp_path, "not signed by a trusted key")


def test_signature_by_an_untrusted_key(repo, keys, tmp_path):
    app = digest_of(repo, "acme/app:1.0")
    put_signature_image(repo, "acme/app", app, [])  # no signatures left ...
    assert_ok(run_cli("sign", repo, "acme/app:1.0", "--key", keys / "other"))  # ... then one by a key nobody trusts
    _refused(repo, keys, tmp_path, "not signed by a trusted key")


def test_payload_blob_whose_digest_is_wrong(repo, keys, tmp_path):
    app = digest_of(repo, "acme/app:1.0")
    manifest, _ = sig_manifest(repo, "acme/app", app)
    path = layout.NEW.blob_path(cosign.Digest.parse(manifest["layers"][0]["digest"]))
    publish(repo, {path: cosign.payload("acme/app", app, {"edited": "in place"})})  # other bytes under the signed payload's name
    _refused(repo, keys, tmp_path, "does not match its digest")


@pytest.mark.parametrize(
    "forged",
    [
        # the signer signed these bytes, but they are not a payload lfsreg accepts: each would
        # name the image to a lenient parser (Go's json is case-insensitive, takes the last duplicate)
        b'{"critical":{"identity":{"docker-reference":"acme/app"},"image":{"Docker-manifest-digest":"DIGEST"},'
        b'"type":"cosign container image signature"},"optional":null}',
        b'{"critical":{"identity":{"docker-reference":"acme/app"},"image":{"docker-manifest-digest":"OTHER"},'
        b'"type":"cosign container image signature"},"critical":{"identity":{"docker-reference":"acme/app"},'
        b'"image":{"docker-manifest-digest":"DIGEST"},"type":"cosign container image signature"},"optional":null}',
        b'{"critical":{"identity":{"docker-reference":"acme/app"},"image":{"docker-manifest-digest":"DIGEST"},'
        b'"type":"atomic container signature"},"optional":null}',
    ],
    ids=["key-case", "duplicate-key", "other-type"],
)
def test_signed_payloads_that_are_not_cosigns_are_refused(repo, keys, tmp_path, forged):
    from lfsreg.api import load_signing_key

    app, tool = digest_of(repo, "acme/app:1.0"), digest_of(repo, "acme/tool:2.0")
    data = forged.replace(b"OTHER", str(tool).encode()).replace(b"DIGEST", str(app).encode())
    key = load_signing_key(str(keys / "trusted"))
    put_signature_image(repo, "acme/app", app, [(data, base64.b64encode(key.sign(data)).decode())])
    _refused(repo, keys, tmp_path, "payload")
