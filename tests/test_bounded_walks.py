"""Walking manifests and indexes is bounded by distinct blobs, not by paths (issue 8, defects 9, 11).

Nested indexes that each list the next one K times have K^depth paths through a handful of
blobs: push, pull, inspect and images must visit each digest once. A chain of indexes deeper
than lfsreg nests them is refused with one line, on push and on pull.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from clirun import check_no_crash
from conftest import assert_error, assert_ok, run_cli, snapshot, verify_layout
from hostile import blob_path, descriptor, dumps, nested_indexes, oci_layout, tag_path
from hostile import edit_registry as edit

FANOUT = 60  # 60^4 = 13 million paths through 5 blobs
QUICK = 60  # seconds: the walk is linear now; the old one ran for hours (or out of memory)


def _cli(*args: object) -> subprocess.CompletedProcess:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lfsreg", *(str(a) for a in args)], capture_output=True, text=True, timeout=QUICK, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"lfsreg {args[0]} did not finish in {QUICK} s: it walks paths, not blobs")
    assert time.monotonic() - start < QUICK
    return check_no_crash(proc)


def _index_json(root: dict, ref: str = "1.0") -> dict:
    return {"schemaVersion": 2, "manifests": [{**root, "annotations": {"org.opencontainers.image.ref.name": ref}}]}


def test_push_and_pull_nested_indexes_visit_each_digest_once(tmp_path, registry):
    root, docs = nested_indexes(4, FANOUT)
    src = oci_layout(tmp_path / "nested", docs, _index_json(root))
    assert_ok(_cli("push", registry, f"oci:{src}:1.0", "--tag", "acme/nested:1"))
    out = tmp_path / "out"
    assert_ok(_cli("pull", registry, "acme/nested:1", "-o", f"oci:{out}"))
    layout = verify_layout(out)
    assert layout.entries[0]["digest"] == root["digest"]
    assert_ok(_cli("inspect", registry, "acme/nested:1"))
    assert_ok(_cli("images", registry))


def test_pull_nested_indexes_stored_by_another_tool(tmp_path, populated):
    """The registry is a git repository: anyone can commit such an index; pull stays linear."""
    root, docs = nested_indexes(4, FANOUT)
    files: dict[str, bytes | None] = {blob_path(descriptor(d)["digest"]): d for d in docs}
    files[tag_path("acme/nested", "1")] = f"{root['digest']}\n".encode()
    edit(populated, files, tmp_path)
    for dest in (f"oci:{tmp_path / 'out'}", f"oci-archive:{tmp_path / 'out.tar'}"):
        assert_ok(_cli("pull", populated, "acme/nested:1", "-o", dest))
    verify_layout(tmp_path / "out")


def _chain(depth: int) -> tuple[dict, list[bytes]]:
    return nested_indexes(depth, 1)


@pytest.mark.parametrize("depth", [5, 1200])
def test_pull_refuses_a_deep_chain_of_indexes(tmp_path, populated, depth):
    root, docs = _chain(depth)
    files: dict[str, bytes | None] = {blob_path(descriptor(d)["digest"]): d for d in docs}
    files[tag_path("acme/deep", "1")] = f"{root['digest']}\n".encode()
    edit(populated, files, tmp_path)
    before = snapshot(populated)
    for dest in ("oci:out", "oci-archive:out.tar"):
        proc = run_cli("pull", populated, "acme/deep:1", "-o", dest, cwd=tmp_path)
        assert_error(proc, 1, "nested", "acme/deep:1")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tar").exists()
    assert snapshot(populated) == before


@pytest.mark.parametrize("depth", [5, 1200])
def test_push_refuses_a_deep_chain_of_indexes(tmp_path, registry, depth):
    root, docs = _chain(depth)
    src = oci_layout(tmp_path / "deep", docs, _index_json(root))
    before = snapshot(registry)
    assert_error(run_cli("push", registry, f"oci:{src}:1.0", "--tag", "acme/deep:1"), 1, "nested", str(src))
    assert snapshot(registry) == before


def test_push_refuses_one_digest_listed_with_two_sizes(tmp_path, registry):
    root, docs = nested_indexes(1, 1)
    child = dumps({"schemaVersion": 2, "mediaType": descriptor(b"")["mediaType"], "manifests": [root, {**root, "size": root["size"] + 1}]})
    src = oci_layout(tmp_path / "sizes", [*docs, child], _index_json(descriptor(child)))
    assert_error(run_cli("push", registry, f"oci:{src}:1.0", "--tag", "acme/sizes:1"), 1, str(src), root["digest"])
