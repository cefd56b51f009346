"""Pushes killed while they stage layers leave no staging behind (issue 8, defect #4).

Real ``python -m lfsreg push`` processes are killed with SIGTERM (a cancelled CI job,
``timeout``) and SIGKILL while their layers sit in ``<registry>/lfs/tmp`` (a local registry) or
in the cache's ``tmp`` (a ``file://`` remote, and an HTTPS one: git http-backend + giftless). SIGTERM cleans up
before exiting; after SIGKILL the next run removes what the dead process left, and succeeds.
The registry's branch is untouched by the killed push either way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import forkserver
import pytest
from clirun import check_no_crash_text
from conftest import assert_ok, main_ref, run_cli
from forkserver import ForkedProcess
from gitenv import cli_env

LAYERS = 3
LAYER_BYTES = 48 << 20


def _layout(root: Path, seed: int, layers: int = LAYERS, size: int = LAYER_BYTES) -> Path:
    """An OCI layout with ``layers`` uncompressed layers of incompressible bytes (slow to gzip)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descs, diff_ids = [], []
    for i in range(layers):
        payload = random.Random(seed * 1000 + i).randbytes(size)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data-{i}.bin")
            info.size = len(payload)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
        layer = buf.getvalue()
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(layer)})
        diff_ids.append(descs[-1]["digest"])
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
            "layers": descs,
        }
    ).encode()
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest)}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> Path:
    return _layout(tmp_path_factory.mktemp("big") / "oci", seed=1)


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []


def _start_push(target: str, image: Path, env: dict[str, str]) -> ForkedProcess:
    """The push in a process of its own (forked: tests/forkserver.py)."""
    return forkserver.spawn(["push", target, f"oci:{image}", "--tag", "acme/big:1"], env=env)


def _wait_for_staging(proc: ForkedProcess, staging: Path, *, min_bytes: int = 1 << 20) -> None:
    """Wait until the push has written at least ``min_bytes`` into a staged file."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"push ended before it staged anything: {proc.communicate()}"
        if any(p.stat().st_size >= min_bytes for p in _files(staging) if p.exists()):
            return
        time.sleep(0.02)
    raise AssertionError("the push never staged a layer")


def _setup(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path, Path, dict[str, str]]:
    """The push target, the registry's bare repository, where its pushes stage layers, the environment."""
    env = cli_env(tmp_path)
    if kind == "https":  # git http-backend + giftless behind nginx (tests/peers)
        server, repo = request.getfixturevalue("git_http_server"), request.getfixturevalue("git_http_repo")
        env.update(LFSREG_USERNAME=server.user, LFSREG_PASSWORD=server.password)
        return repo.url, repo.path, tmp_path / "cache" / "lfs" / "tmp", env
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("init", repo, env=env))
    if kind == "local":
        return str(repo), repo, repo / "lfs" / "tmp", env
    return repo.as_uri(), repo, tmp_path / "cache" / "lfs" / "tmp", env


@pytest.mark.parametrize("kind", ["local", "file", "https"])
def test_sigterm_during_staging_cleans_up(kind, tmp_path, big_image, request):
    target, repo, staging, env = _setup(kind, tmp_path, request)
    before = main_ref(repo)
    proc = _start_push(target, big_image, env)
    _wait_for_staging(proc, staging)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "lfsreg: terminated", err
    assert _files(staging) == [], f"SIGTERM left {len(_files(staging))} staged file(s)"
    assert main_ref(repo) == before


def test_sigterm_during_https_upload_cleans_up(tmp_path, big_image, request):
    """Killed while the queue uploads: its workers stop at their next chunk, nothing staged stays."""
    target, repo, staging, env = _setup("https", tmp_path, request)
    before = main_ref(repo)
    proc = _start_push(target, big_image, env)
    storage = request.getfixturevalue("git_http_repo").lfs_storage
    deadline = time.monotonic() + 60
    while not (storage.is_dir() and any(p.is_file() for p in storage.rglob("*"))):
        assert proc.poll() is None and time.monotonic() < deadline, "the push never started uploading"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    check_no_crash_text(err)
    assert _files(staging) == [], f"SIGTERM left {[p.name for p in _files(staging)]}"
    assert main_ref(repo) == before


@pytest.mark.parametrize("kind", ["local", "file", "https"])
def test_sigkill_leftovers_are_removed_by_the_next_push(kind, tmp_path, big_image, request):
    target, repo, staging, env = _setup(kind, tmp_path, request)
    before = main_ref(repo)
    for _ in range(2):
        proc = _start_push(target, big_image, env)
        _wait_for_staging(proc, staging)
        proc.kill()
        proc.communicate(timeout=60)
    left = _files(staging)
    assert left, "SIGKILL cannot clean up: the test should see its staging"
    assert main_ref(repo) == before
    small = _layout(tmp_path / "small", seed=2, layers=1, size=1 << 16)
    proc = run_cli("push", target, f"oci:{small}", "--tag", "acme/small:1", env=env)
    assert_ok(proc)
    assert _files(staging) == [], f"the next push left {[p.name for p in _files(staging)]}"
    assert main_ref(repo) != before


def test_staging_of_a_live_process_is_kept(tmp_path):
    """The sweep removes only files of processes that are gone (or very old ones)."""
    from lfsreg.staging import PREFIX, STALE_AGE, owner_tag, sweep_stale

    staging = tmp_path / "tmp"
    staging.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = staging / f"{PREFIX}{owner_tag(sleeper.pid)}-live"
        dead = staging / f"{PREFIX}{owner_tag(2**22 + 12345)}-dead"
        foreign = staging / f"{PREFIX}{sleeper.pid}.0000000-other-host"
        ancient = staging / f"{PREFIX}{owner_tag(sleeper.pid)}-ancient"
        unrelated = staging / "keep-me"
        for p in (live, dead, foreign, ancient, unrelated):
            p.write_bytes(b"x")
        os.utime(ancient, (time.time() - STALE_AGE - 60,) * 2)
        assert sweep_stale(str(staging)) == 2
        assert sorted(p.name for p in _files(staging)) == sorted(p.name for p in (live, foreign, unrelated))
    finally:
        sleeper.kill()
        sleeper.wait()
