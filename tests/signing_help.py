"""Helpers of the signature tests: read a ``.sig`` manifest from a registry's tree, write raw tree changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import FIXTURES, tree_files
from peers.procs import tool

import lfsreg
from lfsreg.registry import layout
from lfsreg.signing import cosign


def signed_registry(path: Path, *images: tuple[str, str]) -> Path:
    """A registry at ``path`` holding ``(oci fixture:ref, NAME:TAG)`` images."""
    with lfsreg.Registry(str(path)) as reg:
        reg.init()
        for source, tag in images:
            reg.push([f"oci:{FIXTURES / source}"], tags=[tag])
    return path


def digest_of(repo: Path, image: str) -> lfsreg.Digest:
    with lfsreg.Registry(str(repo)) as reg:
        return reg.view().resolve(lfsreg.ImageRef.parse(image))


def sig_manifest(repo: Path, name: str, digest: lfsreg.Digest) -> tuple[dict, dict[str, bytes]]:
    """The ``.sig`` manifest of ``digest`` (parsed) and every file of the tree."""
    files = tree_files(repo, "")
    tag = files[layout.NEW.tag_path(name, cosign.signature_tag(digest))].decode().strip()
    return json.loads(files[layout.NEW.blob_path(lfsreg.Digest.parse(tag))]), files


def stored_signatures(repo: Path, name: str, digest: lfsreg.Digest) -> list[tuple[bytes, bytes]]:
    """``(payload bytes, decoded signature)`` of every signature of ``digest``, as stored in the tree."""
    import base64

    manifest, files = sig_manifest(repo, name, digest)
    out = []
    for layer in manifest["layers"]:
        payload = files[layout.NEW.blob_path(lfsreg.Digest.parse(layer["digest"]))]
        out.append((payload, base64.b64decode(layer["annotations"][cosign.SIGNATURE_ANNOTATION])))
    return out


def publish(repo: Path, changes: dict[str, bytes | None], message: str = "edit by hand") -> None:
    """Commit raw tree changes (what anyone with push access to the repository can do)."""
    with lfsreg.Registry(str(repo)) as reg:
        reg.publisher().publish(lambda view: changes, message)


def put_signature_image(repo: Path, name: str, digest: lfsreg.Digest, layers: list[tuple[bytes, str]]) -> dict[str, bytes | None]:
    """Write a ``.sig`` manifest for ``digest`` holding ``(payload, base64 signature)`` layers; returns the changes."""
    descs = []
    changes: dict[str, bytes | None] = {}
    for data, signature in layers:
        d = lfsreg.Digest.of_bytes(data)
        raw = {"mediaType": cosign.mt.COSIGN_SIMPLESIGNING, "size": len(data), "digest": str(d)}
        raw["annotations"] = {cosign.SIGNATURE_ANNOTATION: signature}
        descs.append(cosign.Descriptor(cosign.mt.COSIGN_SIMPLESIGNING, d, len(data), raw))
        changes[layout.NEW.blob_path(d)] = data
    manifest, config = cosign.signature_image(descs)
    changes[layout.NEW.blob_path(lfsreg.Digest.of_bytes(config))] = config
    changes[layout.NEW.blob_path(lfsreg.Digest.of_bytes(manifest))] = manifest
    changes[layout.NEW.tag_path(name, cosign.signature_tag(digest))] = layout.tag_content(lfsreg.Digest.of_bytes(manifest))
    publish(repo, changes)
    return changes


def openssl(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run Debian's ``openssl`` (installed by tools/install-test-deps.sh)."""
    return subprocess.run([tool("openssl"), *map(str, args)], input=stdin, capture_output=True, timeout=60, check=False)
