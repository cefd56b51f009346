"""Deduplication: shared layers are stored once, re-pushes upload nothing, layers are reused by diff_id."""

from __future__ import annotations

import pytest
from conftest import (
    Layout,
    check_docker_archive_output,
    commit_count,
    lfs_objects,
    main_ref,
    read_docker_archive,
    sample,
    sha256,
    tree_files,
    verify_layout,
)
from dulwich.repo import Repo

import lfsreg


def _pointers(repo):
    return sorted(p for p in tree_files(repo, "layers/"))


def _tree(repo):
    head = main_ref(repo)
    return Repo(str(repo))[head].tree


def _oci_layer_digests(name, ref):
    layout = Layout(sample("fixtures", name))
    return {d["digest"] for image in layout.flatten(layout.entry(ref)["digest"]) for d, _ in image.layers}


def _diff_ids(name):
    return {d for entry in read_docker_archive(sample("fixtures", name)) for d in entry.diff_ids}


@pytest.mark.parametrize("transport", ["oci", "docker-archive"])
def test_shared_base_layer_stored_once(registry, transport):
    reg = lfsreg.Registry(str(registry))
    if transport == "oci":
        first = reg.push([f"oci:{sample('fixtures', 'app.oci')}:1.0"], tags=["acme/app:1.0"])
        second = reg.push([f"oci:{sample('fixtures', 'tool.oci')}:2.0"], tags=["acme/tool:2.0"])
        app, tool = _oci_layer_digests("app.oci", "1.0"), _oci_layer_digests("tool.oci", "2.0")
    else:
        first = reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"])
        second = reg.push([f"docker-archive:{sample('fixtures', 'tool.docker.tar')}"])
        app, tool = _diff_ids("app.docker.tar"), _diff_ids("tool.docker.tar")
    shared = app & tool
    assert len(shared) == 1, "fixtures: app and tool should share exactly their base layer"
    assert first.layers_uploaded == len(app)
    assert second.layers_uploaded == len(tool - app)
    assert second.layers_reused == len(shared)
    distinct = len(app | tool)
    assert len(lfs_objects(registry)) == distinct
    assert len(_pointers(registry)) == distinct
    # the LFS object names are exactly the pointers' oids
    assert {p.name for p in lfs_objects(registry)} == {p.rsplit("/", 1)[1] for p in _pointers(registry)}


def test_shared_layout_stores_base_once(registry):
    reg = lfsreg.Registry(str(registry))
    result = reg.push([f"oci:{sample('fixtures', 'shared.oci')}"])
    layout = Layout(sample("fixtures", "shared.oci"))
    digests = {d["digest"] for e in layout.entries for image in layout.flatten(e["digest"]) for d, _ in image.layers}
    assert len(digests) == 4
    assert result.layers_uploaded == 4
    assert len(lfs_objects(registry)) == 4
    assert {f"sha256:{p.name}" for p in lfs_objects(registry)} == digests


SAME_TWICE = [
    pytest.param("oci", "app.oci", ":1.0", ["acme/app:1.0"], "zstd", id="app.oci"),
    pytest.param("oci-archive", "app.oci.tar", ":1.0", ["acme/app:1.0"], "zstd", id="app.oci.tar"),
    pytest.param("oci", "multi.oci", ":1.0", ["acme/multi:1.0"], "zstd", id="multi.oci"),
    pytest.param("docker-archive", "app.docker.tar", "", [], "zstd", id="app.docker.tar-zstd"),
    pytest.param("docker-archive", "app.docker.tar", "", [], "gzip", id="app.docker.tar-gzip"),
    pytest.param("docker-archive", "app.docker.tar", "", [], "none", id="app.docker.tar-none"),
    pytest.param("docker-archive", "app.docker.tar.gz", "", [], "zstd", id="app.docker.tar.gz"),
]


@pytest.mark.parametrize(("transport", "name", "selector", "tags", "compression"), SAME_TWICE)
def test_push_same_image_twice_uploads_nothing(registry, transport, name, selector, tags, compression):
    reg = lfsreg.Registry(str(registry))
    source = f"{transport}:{sample('fixtures', name)}{selector}"
    first = reg.push([source], tags=tags, compression=compression)
    assert first.layers_uploaded > 0 and first.bytes_uploaded > 0
    objects, tree, commits = lfs_objects(registry), _tree(registry), commit_count(registry)
    object_bytes = {p: p.read_bytes() for p in objects}
    second = reg.push([source], tags=tags, compression=compression)
    assert second.layers_uploaded == 0
    assert second.bytes_uploaded == 0
    assert second.layers_reused == first.layers_uploaded + first.layers_reused
    assert [(i.name, i.tag, i.digest) for i in second.images] == [(i.name, i.tag, i.digest) for i in first.images]
    assert lfs_objects(registry) == objects
    assert {p: p.read_bytes() for p in objects} == object_bytes
    assert second.commit is None or _tree(registry) == tree
    assert commit_count(registry) in (commits, commits + 1)
    assert _tree(registry) == tree


@pytest.mark.parametrize("layout_name", ["app.oci", "app-zstd.oci"])
@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_docker_archive_after_oci_reuses_layers_by_diff_id(tmp_path, registry, layout_name, compression):
    """The same image as plain tars reuses the compressed layers already stored, in any compression."""
    reg = lfsreg.Registry(str(registry))
    reg.push([f"oci:{sample('fixtures', layout_name)}:1.0"], tags=["acme/app:oci"])
    objects = lfs_objects(registry)
    assert len(objects) == 3
    result = reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], tags=["acme/app:docker"], compression=compression)
    assert result.layers_uploaded == 0
    assert result.bytes_uploaded == 0
    assert result.layers_reused == 3
    assert lfs_objects(registry) == objects
    # the docker image now references the stored (compressed) layers and still comes out right
    stored = _oci_layer_digests(layout_name, "1.0")
    dest = tmp_path / "layout"
    reg.pull(["acme/app:docker"], f"oci:{dest}")
    layout = verify_layout(dest)
    (image,) = layout.flatten(layout.entry("docker")["digest"])
    assert {d["digest"] for d, _ in image.layers} == stored
    (source,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    assert image.config == source.config
    reg.pull(["acme/app:docker"], f"docker-archive:{tmp_path / 'out.tar'}")
    (entry,) = check_docker_archive_output(tmp_path / "out.tar")
    assert entry.config == source.config
    assert [sha256(b) for b in entry.layers] == source.diff_ids


@pytest.mark.parametrize(("first", "second"), [("gzip", "zstd"), ("zstd", "none"), ("none", "gzip")])
def test_docker_archives_reuse_layers_across_compressions(registry, first, second):
    reg = lfsreg.Registry(str(registry))
    reg.push([f"docker-archive:{sample('fixtures', 'base.docker.tar')}"], compression=first)
    assert len(lfs_objects(registry)) == 1
    result = reg.push([f"docker-archive:{sample('fixtures', 'tool.docker.tar')}"], compression=second)
    assert result.layers_uploaded == 1  # only the tool layer; the base layer is reused as stored
    assert result.layers_reused == 1
    assert len(lfs_objects(registry)) == 2
    again = reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], compression=first)
    assert again.layers_uploaded == 2
    assert len(lfs_objects(registry)) == 4
