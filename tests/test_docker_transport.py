"""``docker://`` as a push source and a pull destination (issue 11), against Debian's docker-registry.

* anonymous, htpasswd (``--dest-creds``/``--src-creds``, and ``~/.docker/config.json``) and the
  bearer-token flow (our token server): lfsreg pulls into the registry, stock skopeo reads back
  the same bytes; skopeo writes, lfsreg pushes from the registry, the stored image is the same.
* a multi-platform index goes both ways whole (same digest); ``--platform`` takes one image.
* only missing blobs move: a second pull of the same image uploads nothing (access log), and a
  second image sharing layers sends only its own.
* wrong credentials: one clear line, exit 1, no password in the output, no tag written.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import lfs_objects, run_cli
from gitenv import cli_env, require_tool
from imageverify import FIXTURES
from peers import DistributionServer, docker_config, start_distribution

pytest_plugins = ["peers"]
pytestmark = pytest.mark.interop

FIXTURE = {"none": "distribution_registry", "htpasswd": "distribution_registry_htpasswd", "token": "distribution_registry_token"}


@pytest.fixture(params=list(FIXTURE))
def registry(request: pytest.FixtureRequest) -> DistributionServer:
    return request.getfixturevalue(FIXTURE[request.param])


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def skopeo(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([require_tool("skopeo"), "--insecure-policy", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"skopeo {args[:2]} exited {proc.returncode}: {proc.stderr[-1500:]}"
    return proc


def creds_args(registry: DistributionServer, flag: str) -> list[str]:
    return [flag, registry.creds] if registry.auth != "none" else []


def raw_manifest(registry: DistributionServer, name: str, tag: str) -> bytes:
    args = ["--creds", registry.creds] if registry.auth != "none" else []
    return skopeo("inspect", "--raw", "--tls-verify=false", *args, registry.ref(name, tag)).stdout.encode()


def layout_blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def layout_root(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    _ok(run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env))
    _ok(run_cli("push", repo, f"oci:{FIXTURES / 'multi.oci'}:1.0", "--tag", "acme/multi:1.0", env=env))
    return repo, env


def test_pull_to_registry_and_skopeo_reads_it(registry: DistributionServer, repo, tmp_path: Path):
    path, env = repo
    name = f"lfsreg/pulled-{registry.auth}"
    _ok(run_cli("pull", path, "acme/app:1.0", "-o", f"docker://{registry.host}/{name}:v1", *creds_args(registry, "--dest-creds"), env=env))
    back = tmp_path / "back.oci"
    skopeo("copy", "--src-tls-verify=false", *creds_args(registry, "--src-creds"), registry.ref(name, "v1"), f"oci:{back}:v1")
    original = layout_blobs(FIXTURES / "app.oci")
    assert layout_root(back) == layout_root(FIXTURES / "app.oci")  # the manifest's exact bytes
    assert layout_blobs(back) == {k: original[k] for k in layout_blobs(back)}


def test_push_from_registry_written_by_skopeo(registry: DistributionServer, tmp_path: Path):
    name = f"lfsreg/source-{registry.auth}"
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        *creds_args(registry, "--dest-creds"),
        f"oci:{FIXTURES / 'app.oci'}:1.0",
        registry.ref(name, "s1"),
    )
    env = cli_env(tmp_path)
    repo = tmp_path / "mirror.git"
    out = _ok(run_cli("push", repo, registry.ref(name, "s1"), *creds_args(registry, "--src-creds"), "--format", "json", env=env))
    pushed = json.loads(out.stdout)["images"]
    assert [(i["name"], i["tag"], i["digest"]) for i in pushed] == [(name, "s1", layout_root(FIXTURES / "app.oci"))]
    back = tmp_path / "back.oci"
    _ok(run_cli("pull", repo, f"{name}:s1", "-o", f"oci:{back}", env=env))
    assert layout_root(back) == layout_root(FIXTURES / "app.oci")


def test_credentials_from_docker_config(distribution_registry_token: DistributionServer, repo, tmp_path: Path):
    registry = distribution_registry_token
    path, env = repo
    env = {**env, "DOCKER_CONFIG": str(docker_config(tmp_path / "dc", {registry.host: (registry.user, registry.password)}))}
    _ok(run_cli("pull", path, "acme/app:1.0", "-o", registry.ref("lfsreg/from-config", "1"), env=env))
    assert json.loads(raw_manifest(registry, "lfsreg/from-config", "1"))["schemaVersion"] == 2
    asked = [r for r in registry.token_requests() if any("lfsreg/from-config" in s for s in r["scopes"])]
    assert asked and all(r["user"] == registry.user for r in asked)
    # once /v2/ showed the bearer challenge, each scope's token is fetched before its first request
    refused = [line for line in registry.access_log() if "/v2/lfsreg/from-config/" in line and '" 401 ' in line]
    assert not refused, refused


def test_multi_platform_index_both_ways(distribution_registry: DistributionServer, repo, tmp_path: Path):
    registry = distribution_registry
    path, env = repo
    _ok(run_cli("pull", path, "acme/multi:1.0", "-o", registry.ref("lfsreg/multi", "1.0"), env=env))
    index = json.loads(raw_manifest(registry, "lfsreg/multi", "1.0"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert json.loads((FIXTURES / "multi.oci" / "index.json").read_text())["manifests"][0]["digest"] == (
        "sha256:" + __import__("hashlib").sha256(raw_manifest(registry, "lfsreg/multi", "1.0")).hexdigest()
    )
    mirror = tmp_path / "mirror.git"
    whole = json.loads(_ok(run_cli("push", mirror, registry.ref("lfsreg/multi", "1.0"), "--format", "json", env=env)).stdout)["images"]
    assert whole[0]["digest"] == layout_root(FIXTURES / "multi.oci")
    platforms = [m["platform"] for m in index["manifests"]]
    wanted = f"{platforms[-1]['os']}/{platforms[-1]['architecture']}"
    one = json.loads(
        _ok(
            run_cli(
                "push",
                mirror,
                registry.ref("lfsreg/multi", "1.0"),
                "--platform",
                wanted,
                "--tag",
                "acme/one:1",
                "--format",
                "json",
                env=env,
            )
        ).stdout
    )["images"]
    assert one[0]["digest"] == index["manifests"][-1]["digest"]


def _blob_requests(registry: DistributionServer, name: str) -> list[str]:
    return [line for line in registry.access_log() if f"/v2/{name}/blobs/uploads/" in line and '"POST ' in line]


def test_only_missing_blobs_move(distribution_registry: DistributionServer, repo, tmp_path: Path):
    registry = distribution_registry
    path, env = repo
    name = "lfsreg/again"
    _ok(run_cli("pull", path, "acme/app:1.0", "-o", registry.ref(name, "1"), env=env))
    first = len(_blob_requests(registry, name))
    assert first == len(json.loads(raw_manifest(registry, name, "1"))["layers"]) + 1  # layers + config
    _ok(run_cli("pull", path, "acme/app:1.0", "-o", registry.ref(name, "2"), env=env))
    assert len(_blob_requests(registry, name)) == first  # HEAD found every blob: nothing uploaded again
    assert raw_manifest(registry, name, "2") == raw_manifest(registry, name, "1")


def test_wrong_password_one_line_nothing_written(distribution_registry_htpasswd: DistributionServer, repo, tmp_path: Path):
    registry = distribution_registry_htpasswd
    path, env = repo
    proc = run_cli(
        "pull", path, "acme/app:1.0", "-o", registry.ref("lfsreg/denied", "1"), "--dest-creds", f"{registry.user}:wrong-pw-123", env=env
    )
    assert proc.returncode == 1, proc.stderr
    assert "wrong-pw-123" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and "refused the credentials" in lines[0], proc.stderr
    probe = subprocess.run(
        [require_tool("skopeo"), "inspect", "--tls-verify=false", "--creds", registry.creds, registry.ref("lfsreg/denied", "1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0  # no tag was written


def test_token_realm_downgrade_refused_and_creds_not_in_errors(distribution_registry_token: DistributionServer, repo):
    """Anonymous access to a token registry: the token server refuses, one line names the host, exit 1."""
    registry = distribution_registry_token
    path, env = repo
    proc = run_cli("pull", path, "acme/app:1.0", "-o", registry.ref("lfsreg/anon", "1"), env=env)
    assert proc.returncode == 1
    assert registry.host in proc.stderr and "credentials" in proc.stderr, proc.stderr


def test_second_repository_mounts_instead_of_uploading(distribution_registry: DistributionServer, repo, tmp_path: Path):
    """``-o docker://HOST`` keeps each image's name; a blob one image already put there is mounted into the next."""
    registry = distribution_registry
    path, env = repo
    _ok(run_cli("push", path, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "mnt/second:1.0", env=env))
    _ok(run_cli("push", path, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "mnt/first:1.0", env=env))
    _ok(run_cli("pull", path, "mnt/first:1.0", "mnt/second:1.0", "-o", f"docker://{registry.host}", env=env))
    log = registry.access_log()
    mounts = [line for line in log if "/v2/mnt/second/blobs/uploads/?mount=" in line and '" 201 ' in line]
    sessions = [line for line in log if '"POST /v2/mnt/second/blobs/uploads/ ' in line]
    assert mounts and not sessions, "\n".join(line for line in log if "mnt/second" in line)
    assert raw_manifest(registry, "mnt/second", "1.0") == raw_manifest(registry, "mnt/first", "1.0")


def test_corrupt_layer_leaves_no_tag_and_no_blob(tmp_path: Path):
    """A stored layer whose bytes were damaged is caught while it streams: the upload is cut, no tag appears."""
    with start_distribution(tmp_path / "fresh-registry") as registry:
        _corrupt_layer_pull(registry, tmp_path)


def _corrupt_layer_pull(registry: DistributionServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = tmp_path / "damaged.git"
    _ok(run_cli("push", path, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", "--compression", "none", env=env))
    objects = lfs_objects(path)
    assert objects
    victim = max(objects, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))
    proc = run_cli("pull", path, "acme/app:1.0", "-o", registry.ref("lfsreg/damaged", "1"), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lfsreg: error:" in proc.stderr
    probe = subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", registry.ref("lfsreg/damaged", "1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0  # no tag
    assert not registry.blob_path(f"sha256:{victim.name}").exists()
    assert "corrupt" in proc.stderr.lower() or "digest" in proc.stderr.lower(), proc.stderr


def test_upload_body_verified_before_its_last_byte(distribution_registry: DistributionServer):
    """The client's monolithic PUT reads a verifying reader: bytes that do not match are cut off, nothing stored."""
    import hashlib
    import io

    from lfsreg.digest import Digest
    from lfsreg.distribution.client import RegistryClient
    from lfsreg.distribution.session import RegistryAccess
    from lfsreg.errors import CorruptContentError
    from lfsreg.integrity import VerifiedReader

    good = b"the bytes the digest promises " * 4000
    bad = good[:-1] + b"!"
    digest = Digest("sha256", hashlib.sha256(good).hexdigest())
    client = RegistryClient(distribution_registry.host, RegistryAccess())
    try:
        with pytest.raises(CorruptContentError):
            client.upload("lfsreg/verified", digest, len(good), lambda: VerifiedReader(io.BytesIO(bad), digest, len(good), "test blob"))
        assert not client.has_blob("lfsreg/verified", digest)
        client.upload("lfsreg/verified", digest, len(good), lambda: VerifiedReader(io.BytesIO(good), digest, len(good), "test blob"))
        assert client.has_blob("lfsreg/verified", digest, len(good))
    finally:
        client.close()
    assert distribution_registry.blob_path(str(digest)).read_bytes() == good


def test_head_of_a_large_blob(distribution_registry: DistributionServer):
    """A blob over 16 MiB: its HEAD answer declares the blob's length and has no body (failed before: "more than allowed")."""
    import hashlib
    import io

    from lfsreg.digest import Digest
    from lfsreg.distribution.client import RegistryClient
    from lfsreg.distribution.session import RegistryAccess
    from lfsreg.integrity import VerifiedReader

    data = bytes(range(256)) * (17 * 4096 + 1)  # 17 MiB + 256 bytes
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    client = RegistryClient(distribution_registry.host, RegistryAccess())
    try:
        assert not client.has_blob("lfsreg/large", digest)
        client.upload("lfsreg/large", digest, len(data), lambda: VerifiedReader(io.BytesIO(data), digest, len(data), "large blob"))
        assert client.has_blob("lfsreg/large", digest, len(data))
        assert not client.has_blob("lfsreg/large", digest, len(data) - 1)  # another size is not this blob
    finally:
        client.close()
