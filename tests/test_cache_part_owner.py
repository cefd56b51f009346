"""Two pulls sharing one cache download the same LFS object at the same time (issue 8).

A resumable download keeps its bytes in ``incomplete/<oid>.part``. Two processes appending to
that one file made a corrupt part (and the slower one failed when the faster had renamed it
into the cache). The part has one owner at a time; a second download of the same object goes
to a file of its own. The overlap is forced, not hoped for: the first pull stops (a barrier,
``tests/cli_at.py pause``) right after it wrote its first chunk into the part, the second pull
runs from start to end, then the first is let go. Both must succeed with the right bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import forkserver
import pytest
from conftest import CLI_TIMEOUT, assert_ok, describe, run_cli
from forkserver import ForkedProcess
from gitenv import cli_env
from imageverify import verify_oci_layout

pytestmark = pytest.mark.interop
LAYER_FILE = 3 << 20  # several download chunks (1 MiB each): the first pull stops after one


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _image_with_a_big_layer(root: Path) -> str:
    """An OCI layout ``root`` (tag ``1.0``) whose one plain layer holds incompressible bytes; returns its diff_id."""
    payload = os.urandom(LAYER_FILE)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = buf.getvalue()
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(root, layer)}
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}, "config": {}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(root, config)},
            "layers": [layer_desc],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(root, manifest),
                "annotations": {"org.opencontainers.image.ref.name": "1.0"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return str(layer_desc["digest"])


def _wait_for(path: Path, proc: ForkedProcess) -> None:
    deadline = time.monotonic() + CLI_TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the first pull ended before it reached the barrier: exit {proc.returncode}\n{out}\n{err}")
        assert time.monotonic() < deadline, "the first pull never reached the barrier"
        time.sleep(0.01)


def _pulled_diff_ids(layout: Path) -> list[str]:
    """The layers' diff_ids of the one image in ``layout`` (every blob and diff_id checked)."""
    images = verify_oci_layout(layout)
    assert len(images) == 1
    return images[0].diff_ids


def test_two_pulls_download_one_object_at_the_same_time(git_http_server, git_http_repo, tmp_path: Path) -> None:
    env = cli_env(tmp_path, git_http_server)
    diff_id = _image_with_a_big_layer(tmp_path / "src.oci")
    push_env = {**env, "LFSREG_CACHE": str(tmp_path / "push-cache")}
    assert_ok(run_cli("push", git_http_repo.url, f"oci:{tmp_path / 'src.oci'}:1.0", "--tag", "acme/big:1.0", env=push_env))

    shared = {**env, "LFSREG_CACHE": str(tmp_path / "shared-cache")}  # empty: both pulls download the layer
    ready, go = tmp_path / "first-paused", tmp_path / "go"
    first = forkserver.spawn(
        [
            "pause",
            "lfsreg.staging:VerifiedWriter.write",
            str(ready),
            str(go),
            "--",
            "pull",
            git_http_repo.url,
            "acme/big:1.0",
            "-o",
            f"oci:{tmp_path / 'first.oci'}",
        ],
        env=shared,
        entry="cli_at",
    )
    try:
        _wait_for(ready, first)  # the first pull has written one chunk of the object, and waits
        parts = list((tmp_path / "shared-cache").rglob("*.part"))
        assert parts and all(p.stat().st_size < LAYER_FILE for p in parts), [(p, p.stat().st_size) for p in parts]  # the overlap is real
        second = run_cli("pull", git_http_repo.url, "acme/big:1.0", "-o", f"oci:{tmp_path / 'second.oci'}", env=shared)
        go.touch()
        out, err = first.communicate(timeout=CLI_TIMEOUT)
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert_ok(second)
    assert first.returncode == 0, describe(subprocess.CompletedProcess(first.args, first.returncode, out, err))
    assert "Traceback" not in err, err
    assert _pulled_diff_ids(tmp_path / "second.oci") == [diff_id]
    assert _pulled_diff_ids(tmp_path / "first.oci") == [diff_id]
    cached = [p for p in (tmp_path / "shared-cache" / "lfs" / "objects").rglob("*") if p.is_file()]
    assert cached and all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in cached)
    assert list((tmp_path / "shared-cache").rglob("*.part")) == []
