"""``lfsreg pull`` of an image whose manifest calls a compressed layer uncompressed
(ops/pull.py): the layer's digest is then its diff_id by definition, and the config says
otherwise; every output refuses it in one line and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from hostile import app_manifest, blob_path, digest_of, dumps, edit_registry, tag_path
from imageverify import FIXTURES


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


@pytest.mark.parametrize("output", ["oci", "docker-archive", "oci-archive"])
def test_an_uncompressed_layer_that_is_not_its_diff_id_is_refused(tmp_path, output):
    repo = tmp_path / "reg.git"
    env = _env(tmp_path)
    assert run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0", env=env).returncode == 0
    manifest = json.loads(app_manifest()[1])
    manifest["layers"][2]["mediaType"] = "application/vnd.oci.image.layer.v1.tar"  # its bytes are gzip
    data = dumps(manifest)
    edit_registry(repo, {blob_path(digest_of(data)): data, tag_path("acme/plain", "1"): (digest_of(data) + "\n").encode()}, tmp_path)
    target = tmp_path / ("out" if output == "oci" else "out.tar")
    proc = run_cli("pull", str(repo), "acme/plain:1", "-o", f"{output}:{target}", env=env)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    first = proc.stderr.splitlines()[0]
    assert f"layer {manifest['layers'][2]['digest']}: an uncompressed layer must equal its diff_id sha256:" in first, first
    assert not target.exists() or (target.is_dir() and not (target / "index.json").exists())  # no image written
