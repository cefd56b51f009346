"""A write that restores a missing ``.gitattributes`` keeps the registry's format marker (docs/format.md, "Versioning").

Before, it wrote version 1's marker with it: a version 2 registry (chunked layers) whose
``.gitattributes`` a stock-git user removed became "version 1" on the next push, and an lfsreg
that knows only version 1 then read its chunk directories as missing layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli
from conftest import assert_ok, tree_files
from gitenv import cli_env
from hostile import edit_registry
from imageverify import FIXTURES
from test_chunked_layers import MIB, big_archive

from lfsreg.registry import layout


# A version 1 registry becomes 2 with its first chunked layer; version 4 stays 4 (its names' paths too).
@pytest.mark.parametrize(("created", "kept"), [(1, 2), (4, 4)])
def test_restoring_gitattributes_keeps_the_format_version(tmp_path: Path, created: int, kept: int) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    big = tmp_path / "big.docker.tar"
    big_archive(big, [int(1.5 * MIB)], "acme/big:1")
    assert_ok(run_cli("init", repo, "--format-version", str(created), env=env))
    assert_ok(run_cli("config", repo, "limits.object", str(MIB), env=env))
    assert_ok(run_cli("push", repo, f"docker-archive:{big}", env=env))  # a chunked layer
    assert json.loads(tree_files(repo, layout.MARKER)[layout.MARKER])["version"] == kept
    edit_registry(repo, {layout.GITATTRIBUTES: None}, tmp_path)
    assert_ok(run_cli("push", repo, f"docker-archive:{FIXTURES / 'app.docker.tar'}", env=env))
    files = tree_files(repo, "")
    assert files[layout.GITATTRIBUTES] == layout.GITATTRIBUTES_BYTES  # restored ...
    assert json.loads(files[layout.MARKER])["version"] == kept  # ... and the marker kept
    lay = layout.layout_of(kept)
    assert lay.tag_path("acme/big", "1") in files and lay.tag_path("acme/app", "1.0") in files
