"""cosign itself (v2, pinned in tools/peers/go-tools.txt) against ``lfsreg serve``, both directions.

* ``cosign sign --key`` pushes its signature through ``lfsreg serve`` (the payload becomes a git
  file under ``blobs/``); ``lfsreg pull --verify-key cosign.pub`` accepts it, another key does not.
* ``lfsreg sign`` (an lfsreg key of each type, and cosign's own encrypted key) writes signatures
  ``cosign verify --key … --insecure-ignore-tlog`` accepts through ``lfsreg serve``; with another key it refuses.

No transparency log (``--tlog-upload=false`` / ``--insecure-ignore-tlog``): nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from conftest import assert_error, assert_ok, run_cli
from peers.goclients import go_tool
from signing_help import digest_of, sig_manifest, signed_registry

from lfsreg.api import Registry
from lfsreg.registry import layout
from lfsreg.serve import RegistryServer, ServeOptions

USER, PASSWORD, KEY_PASSWORD = "signer", "secret", "cosign-pw"


class Cosign:
    """A served registry (writes need the htpasswd user) and cosign set up to use it."""

    def __init__(self, base: Path, repo: Path, host: str) -> None:
        self.repo, self.host, self.base = repo, host, base
        config = base / "docker-config"
        config.mkdir()
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        home = base / "home"
        home.mkdir()
        self.env = {**os.environ, "DOCKER_CONFIG": str(config), "HOME": str(home), "COSIGN_PASSWORD": KEY_PASSWORD}
        self.env["SIGSTORE_NO_CACHE"] = "1"

    def run(self, *args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [go_tool("cosign"), *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=self.env, cwd=self.base, check=False)
        if ok:
            assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr[-3000:]}"
        return proc

    def verify(self, pub: Path, image: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("verify", "--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", f"{self.host}/{image}", ok=ok)


@pytest.fixture(scope="module")
def cosign(tmp_path_factory) -> Iterator[Cosign]:
    base = tmp_path_factory.mktemp("cosign")
    repo = signed_registry(
        base / "reg.git", ("app.oci:1.0", "acme/app:1.0"), ("tool.oci", "acme/tool:2.0"), ("multi.oci:1.0", "acme/multi:1.0")
    )
    htpasswd = base / "htpasswd"
    htpasswd.write_text(f"{USER}:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode() + "\n")
    reg = Registry(str(repo))
    server = RegistryServer(reg, ServeOptions(listen="127.0.0.1:0", htpasswd=str(htpasswd), refresh=0.01))
    server.start()
    try:
        c = Cosign(base, repo, server.url.removeprefix("http://"))
        c.run("generate-key-pair")  # cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY, COSIGN_PASSWORD) and cosign.pub
        yield c
    finally:
        server.close()
        reg.close()


def test_cosign_sign_then_lfsreg_pull_verify_key(cosign, tmp_path):
    digest = digest_of(cosign.repo, "acme/tool:2.0")
    cosign.run("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", f"{cosign.host}/acme/tool@{digest}")
    manifest, files = sig_manifest(cosign.repo, "acme/tool", digest)
    [layer] = manifest["layers"]
    payload = layer["digest"].split(":")[1]
    assert layout.NEW.hex_path("blobs", payload) in files and not any(p.startswith(layout.NEW.hex_path("layers", payload)) for p in files)
    pub = cosign.base / "cosign.pub"
    assert_ok(run_cli("pull", cosign.repo, "acme/tool:2.0", "--verify-key", pub, "-o", f"oci:{tmp_path / 'out'}"))
    assert_ok(run_cli("verify", cosign.repo))
    assert_ok(run_cli("keygen", "--sign", "--out", tmp_path / "other"))
    line = assert_error(
        run_cli("pull", cosign.repo, "acme/tool:2.0", "--verify-key", tmp_path / "other.pub", "-o", f"oci:{tmp_path / 'o2'}"), 1
    )
    assert "acme/tool@sha256:" in line and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_lfsreg_sign_then_cosign_verify(cosign, tmp_path, key_type):
    key = tmp_path / "k"
    assert_ok(run_cli("keygen", "--sign", "--type", key_type, "--out", key))
    assert_ok(run_cli("sign", cosign.repo, "acme/app:1.0", "--key", key, "-a", "ci=lfsreg"))
    proc = cosign.verify(tmp_path / "k.pub", "acme/app:1.0")
    [claims] = [c for c in json.loads(proc.stdout) if c.get("optional")]
    assert claims["critical"]["image"]["docker-manifest-digest"] == str(digest_of(cosign.repo, "acme/app:1.0"))
    assert claims["optional"] == {"ci": "lfsreg"}
    assert_ok(run_cli("keygen", "--sign", "--type", key_type, "--out", tmp_path / "stranger"))
    assert cosign.verify(tmp_path / "stranger.pub", "acme/app:1.0", ok=False).returncode != 0


def test_lfsreg_signs_with_cosigns_encrypted_key(cosign):
    key = cosign.base / "cosign.key"
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert_error(run_cli("sign", cosign.repo, "acme/multi:1.0", "--key", key, env={"LFSREG_KEY_PASSWORD": "wrong"}), 2, "password")
    assert_ok(run_cli("sign", cosign.repo, "acme/multi:1.0", "--key", key, env={"LFSREG_KEY_PASSWORD": KEY_PASSWORD}))
    cosign.verify(cosign.base / "cosign.pub", "acme/multi:1.0")
