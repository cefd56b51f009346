"""``lfsreg copy`` at its edges (issue 10; branch coverage of ops/copy.py): bad selections and
damaged sources write nothing, a destination's damaged layer record is replaced, objects move in
several groups, and a whole layer that turns out corrupt while it is cut into chunks leaves no
commit and no staged chunk behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import lfs_objects, main_ref, run_cli, tree_files
from gitenv import cli_env
from hostile import app_manifest, blob_path, digest_of, dumps, edit_registry, nested_indexes, tag_path
from imageverify import FIXTURES

import lfsreg
from lfsreg.errors import CorruptContentError
from lfsreg.registry import layout

APP = "acme/app:1.0"


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("pristine") / "src.git"
    proc = run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", APP, env=_env(repo.parent))
    assert proc.returncode == 0, proc.stderr
    return repo


@pytest.fixture
def src(pristine: Path, tmp_path: Path) -> Path:
    out = tmp_path / "src.git"
    shutil.copytree(pristine, out, symlinks=True)
    return out


def _refused(tmp: Path, *args: str, code: int = 1) -> str:
    proc = run_cli("copy", *args, env=_env(tmp))
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("hint:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _nothing_written(dst: Path) -> None:
    assert not dst.exists() or main_ref(dst) is None
    assert not dst.exists() or not lfs_objects(dst)


def test_an_empty_source_has_no_tags_to_copy(tmp_path):
    empty, dst = tmp_path / "empty.git", tmp_path / "dst.git"
    assert run_cli("init", str(empty), env=_env(tmp_path)).returncode == 0
    assert "no tags to copy" in _refused(tmp_path, str(empty), str(dst))
    _nothing_written(dst)


def test_an_unknown_name_or_a_digest_reference_is_refused(src, tmp_path):
    dst = tmp_path / "dst.git"
    assert "no image named acme/nothere" in _refused(tmp_path, str(src), str(dst), "acme/nothere")
    desc, _ = app_manifest()
    line = _refused(tmp_path, str(src), str(dst), f"acme/app@{desc['digest']}")
    assert "copy takes NAME or NAME:TAG" in line
    _nothing_written(dst)


def test_indexes_nested_too_deep_in_the_source_copy_nothing(src, tmp_path):
    root, docs = nested_indexes(6, 1)
    edit_registry(
        src, {**{blob_path(digest_of(d)): d for d in docs}, tag_path("acme/deep", "1"): (root["digest"] + "\n").encode()}, tmp_path
    )
    dst = tmp_path / "dst.git"
    assert "indexes nested more than 4 deep" in _refused(tmp_path, str(src), str(dst), "acme/deep:1")
    _nothing_written(dst)


def test_a_source_config_with_too_few_diff_ids_copies_nothing(src, tmp_path):
    manifest = json.loads(app_manifest()[1])
    path = blob_path(manifest["config"]["digest"])
    config = json.loads(tree_files(src, path)[path])
    config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"][:1]
    raw = dumps(config)
    manifest["config"] = {**manifest["config"], "digest": digest_of(raw), "size": len(raw)}
    data = dumps(manifest)
    edit_registry(
        src,
        {blob_path(digest_of(raw)): raw, blob_path(digest_of(data)): data, tag_path("acme/short", "1"): (digest_of(data) + "\n").encode()},
        tmp_path,
    )
    dst = tmp_path / "dst.git"
    assert "has 3 layers, its config 1" in _refused(tmp_path, str(src), str(dst), "acme/short:1")
    _nothing_written(dst)


def test_an_index_naming_one_manifest_twice_copies_it_once(src, tmp_path):
    root, docs = nested_indexes(2, 3)  # 9 paths to app's manifest, 3 distinct documents
    edit_registry(
        src, {**{blob_path(digest_of(d)): d for d in docs}, tag_path("acme/multi", "1"): (root["digest"] + "\n").encode()}, tmp_path
    )
    dst = tmp_path / "dst.git"
    proc = run_cli("copy", str(src), str(dst), "acme/multi:1", "--format", "json", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["objects_copied"] == 3 == len(lfs_objects(dst))
    assert run_cli("verify", str(dst), "--deep", env=_env(tmp_path)).returncode == 0


def test_objects_move_in_several_groups(src, tmp_path, monkeypatch):
    monkeypatch.setattr("lfsreg.ops.copy.GROUP_OBJECTS", 2)  # app's 3 layers: a group of 2, then one of 1
    dst = tmp_path / "dst.git"
    proc = run_cli("copy", str(src), str(dst), "--format", "json", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["objects_copied"] == out["objects"] == 3 == len(lfs_objects(dst))
    assert out["bytes_copied"] == sum(p.stat().st_size for p in lfs_objects(src))
    assert run_cli("verify", str(dst), "--deep", env=_env(tmp_path)).returncode == 0


def test_a_damaged_layer_record_in_the_destination_is_replaced(src, tmp_path):
    dst = tmp_path / "dst.git"
    env = _env(tmp_path)
    assert run_cli("copy", str(src), str(dst), env=env).returncode == 0
    layer = json.loads(app_manifest()[1])["layers"][0]["digest"].split(":")[1]
    pointer = layout.NEW.hex_path("layers", layer)
    good = tree_files(dst, pointer)[pointer]
    edit_registry(dst, {pointer: b"version https://git-lfs.github.com/spec/v1\noid sha256:nothex\nsize 1\n"}, tmp_path)
    assert run_cli("verify", str(dst), env=env).returncode == 1
    proc = run_cli("copy", str(src), str(dst), "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert tree_files(dst, pointer)[pointer] == good
    assert json.loads(proc.stdout)["objects_copied"] == 0  # its object was there all along
    assert run_cli("verify", str(dst), "--deep", env=env).returncode == 0


@pytest.mark.parametrize("damage", ["flipped", "truncated", "extended"])
def test_a_corrupt_whole_layer_cut_into_chunks_leaves_nothing(src, tmp_path, damage):
    """The source's object has other bytes than its layer: the chunks cut from it are dropped, no commit."""
    layer = max(json.loads(app_manifest()[1])["layers"], key=lambda x: x["size"])
    hexpart = layer["digest"].split(":")[1]
    obj = src / "lfs" / "objects" / hexpart[:2] / hexpart[2:4] / hexpart
    data = bytearray(obj.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data += b"more"
    obj.write_bytes(bytes(data))
    dst = tmp_path / "dst.git"
    assert run_cli("init", str(dst), env=_env(tmp_path)).returncode == 0
    before = main_ref(dst)
    limit = layer["size"] // 3
    with lfsreg.Registry(str(src)) as reg, pytest.raises(CorruptContentError, match=layer["digest"]):
        reg.copy(str(dst), object_limit=limit)
    assert main_ref(dst) == before
    bad_chunks = {hashlib.sha256(data[i : i + limit]).hexdigest() for i in range(0, len(data), limit)}
    assert not bad_chunks & {p.name for p in lfs_objects(dst)}
    assert [p for p in (dst / "lfs").rglob("*") if p.is_file() and "objects" not in p.parts] == []  # no staged chunk left


def test_a_layer_an_exact_multiple_of_the_limit_has_no_empty_last_chunk(src, tmp_path):
    layers = {x["digest"].split(":")[1]: x["size"] for x in json.loads(app_manifest()[1])["layers"]}
    even = next(h for h, size in layers.items() if size == 4946)  # 2 x 2473
    dst = tmp_path / "dst.git"
    with lfsreg.Registry(str(src)) as reg:
        result = reg.copy(str(dst), object_limit=2473)
    chunks = sorted(p.rsplit("/", 1)[-1] for p in tree_files(dst, f"{layout.NEW.hex_path('layers', even)}/"))
    assert chunks == ["000000", "000001"]
    assert hashlib.sha256(b"").hexdigest() not in {p.name for p in lfs_objects(dst)}
    assert result.objects_copied == len(lfs_objects(dst)) == 2 + 3 + 1  # 4946 in 2, 6481 in 3, 352 whole
    env = _env(tmp_path)
    assert run_cli("verify", str(dst), "--deep", env=env).returncode == 0
    assert run_cli("pull", str(dst), APP, "-o", f"oci:{tmp_path / 'pulled'}", env=env).returncode == 0
