"""``lfsreg verify`` on documents crafted behind lfsreg's back (issue 10; branch coverage of ops/verify.py).

Each test writes hand-made manifests, indexes and configs into a local registry with git
plumbing (tests/hostile.py), stored under their true digests so only the defect under test is
there, and checks that verify names exactly that defect in one line and exits 1.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli, tree_files
from gitenv import cli_env
from hostile import app_manifest, blob_path, descriptor, digest_of, dumps, edit_registry, nested_indexes, tag_path
from imageverify import FIXTURES

from lfsreg.registry import layout

APP = "acme/app:1.0"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("pristine") / "reg.git"
    proc = run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", APP, env=_env(repo.parent))
    assert proc.returncode == 0, proc.stderr
    return repo


@pytest.fixture
def repo(pristine: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reg.git"
    shutil.copytree(pristine, out, symlinks=True)
    return out


def _manifest() -> dict:
    return json.loads(app_manifest()[1])


def _config(repo: Path) -> dict:
    path = blob_path(_manifest()["config"]["digest"])
    return json.loads(tree_files(repo, path)[path])


def _store(repo: Path, tmp: Path, tags: dict[str, bytes], docs: list[bytes]) -> None:
    """Replace every tag of ``repo`` with ``tags`` (``name:tag`` -> the document it names), storing ``docs`` too."""
    files: dict[str, bytes | None] = {tag_path("acme/app", "1.0"): None}
    for data in [*docs, *tags.values()]:
        files[blob_path(digest_of(data))] = data
    for ref, data in tags.items():
        name, tag = ref.split(":")
        files[tag_path(name, tag)] = (digest_of(data) + "\n").encode()
    edit_registry(repo, files, tmp)


def _problems(repo: Path, tmp: Path, *args: str) -> list[str]:
    proc = run_cli("verify", str(repo), *args, env=_env(tmp))
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


def test_a_child_whose_size_disagrees_with_its_descriptor(repo, tmp_path):
    desc, data = app_manifest()
    index = dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{**desc, "size": desc["size"] + 1}]}
    )
    _store(repo, tmp_path, {"acme/multi:1": index}, [data])
    assert _problems(repo, tmp_path) == [
        f"acme/multi:1: manifest {desc['digest']} has {desc['size']} bytes, its descriptor says {desc['size'] + 1}"
    ]


def test_indexes_nested_too_deep(repo, tmp_path):
    root, docs = nested_indexes(6, 1)  # the manifest sits 6 levels below the root index
    _store(repo, tmp_path, {"acme/deep:1": docs[0]}, docs[1:])
    (line,) = _problems(repo, tmp_path)
    assert line.startswith("acme/deep:1: indexes nested more than 4 deep at sha256:"), line
    assert root["digest"] == digest_of(docs[0])


def test_a_blob_that_is_no_manifest(repo, tmp_path):
    data = b'{"schemaVersion": 2}'
    _store(repo, tmp_path, {"acme/odd:1": data}, [])
    (line,) = _problems(repo, tmp_path)
    assert line.startswith(f"acme/odd:1: manifest {digest_of(data)}"), line


def test_a_config_that_does_not_parse(repo, tmp_path):
    config = b"this is not json"
    manifest = _manifest()
    manifest["config"] = descriptor(config, OCI_CONFIG)
    data = dumps(manifest)
    _store(repo, tmp_path, {"acme/badcfg:1": data}, [config])
    (line,) = _problems(repo, tmp_path)
    assert line.startswith(f"acme/badcfg:1: config {digest_of(config)}"), line


def test_a_config_with_fewer_diff_ids_than_layers(repo, tmp_path):
    config = _config(repo)
    config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"][:2]
    raw = dumps(config)
    manifest = _manifest()
    manifest["config"] = descriptor(raw, OCI_CONFIG)
    data = dumps(manifest)
    _store(repo, tmp_path, {"acme/short:1": data}, [raw])
    assert _problems(repo, tmp_path) == [f"acme/short:1: manifest {digest_of(data)} has 3 layers, its config 2"]


def test_a_name_that_is_not_valid_is_one_line(repo, tmp_path):
    """A tag directory under a name lfsreg would never write (upper case): named, the rest still checked."""
    desc, _ = app_manifest()
    edit_registry(repo, {f"{layout.NEW.tags_dir('ACME')}/1": (desc["digest"] + "\n").encode()}, tmp_path)
    (line,) = _problems(repo, tmp_path)
    assert line.startswith("ACME: "), line
    proc = run_cli("verify", str(repo), "--format", "json", env=_env(tmp_path))
    assert json.loads(proc.stdout)["tags"] == 1  # acme/app:1.0 was checked


def test_deep_an_uncompressed_layer_must_equal_its_diff_id(repo, tmp_path):
    manifest = _manifest()
    manifest["layers"][2]["mediaType"] = "application/vnd.oci.image.layer.v1.tar"  # the bytes are gzip: digest != diff_id
    data = dumps(manifest)
    _store(repo, tmp_path, {"acme/plain:1": data}, [])
    assert run_cli("verify", str(repo), env=_env(tmp_path)).returncode == 0  # objects present, pointers sound
    layer = manifest["layers"][2]["digest"]
    diff_id = _config(repo)["rootfs"]["diff_ids"][2]
    assert _problems(repo, tmp_path, "--deep") == [f"acme/plain:1: layer {layer}: an uncompressed layer must equal its diff_id {diff_id}"]


def test_deep_checks_a_shared_layer_against_the_diff_id_of_a_later_image(repo, tmp_path):
    """The first image naming a layer has no image config (an artifact): the next one's diff_id still counts."""
    artifact_config = b"{}"
    artifact = _manifest()
    artifact["config"] = descriptor(artifact_config, "application/vnd.example.artifact+json")
    config = _config(repo)
    wrong = copy.deepcopy(config)
    wrong["rootfs"]["diff_ids"][0] = digest_of(b"not the layer")
    raw = dumps(wrong)
    image = _manifest()
    image["config"] = descriptor(raw, OCI_CONFIG)
    a, b = dumps(artifact), dumps(image)
    _store(repo, tmp_path, {"acme/a:1": a, "acme/b:1": b}, [artifact_config, raw])
    lines = _problems(repo, tmp_path, "--deep")
    layer = image["layers"][0]["digest"]
    assert len(lines) == 1 and lines[0].startswith(f"acme/a:1: layer {layer}"), lines
    assert lines[0].endswith(f"the config says {wrong['rootfs']['diff_ids'][0]}"), lines[0]
