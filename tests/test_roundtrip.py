"""Round trips: every sample in ../shared/FORMATS and every fixture, pushed and pulled back.

Each image is pulled to a docker-archive, an OCI layout and an OCI archive, and compared with
the source as read by the independent readers in conftest.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform as host
import subprocess
import tarfile
from dataclasses import dataclass

import pytest
import zstandard
from conftest import (
    INDEX_TYPES,
    LAYER_TYPE_FOR,
    FlatImage,
    Layout,
    assert_error,
    assert_ok,
    check_docker_archive_output,
    commit_count,
    compression_of,
    decompress,
    familiar,
    lfs_objects,
    main_ref,
    media_type_of,
    read_docker_archive,
    run_cli,
    sample,
    sha256,
    snapshot,
    tree_files,
    verify_layout,
)
from gitenv import require_tool

import lfsreg
from lfsreg.registry import layout as registry_layout


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "formats" or "fixtures"
    file: str
    transport: str
    selector: str | None = None
    tags: tuple[str, ...] = ()

    def source(self) -> str:
        return f"{self.transport}:{sample(self.kind, self.file)}" + (f":{self.selector}" if self.selector else "")


DOCKER_CASES = [
    Case("ggcr-hello-world-v25", "formats", "ggcr-hello-world-v25.tar", "docker-archive", tags=("hello/world:v25",)),
    Case("ggcr-test_bundle", "formats", "ggcr-test_bundle.tar", "docker-archive"),
    Case("ggcr-test_image_1", "formats", "ggcr-test_image_1.tar", "docker-archive"),
    Case("ggcr-test_link", "formats", "ggcr-test_link.tar", "docker-archive"),
    Case("app.docker.tar", "fixtures", "app.docker.tar", "docker-archive"),
    Case("app.docker.tar.gz", "fixtures", "app.docker.tar.gz", "docker-archive"),
    Case("app-tags.docker.tar", "fixtures", "app-tags.docker.tar", "docker-archive"),
    Case("untagged.docker.tar", "fixtures", "untagged.docker.tar", "docker-archive", tags=("acme/untagged:0.1",)),
    Case("base.docker.tar", "fixtures", "base.docker.tar", "docker-archive"),
    Case("tool.docker.tar", "fixtures", "tool.docker.tar", "docker-archive"),
]
OCI_CASES = [
    # every root of the layout with nested indexes and Docker media types, one by one
    *(
        Case(f"ggcr-layout-test_index:{i}", "formats", "ggcr-layout-test_index", "oci", str(i), (f"ggcr/test-index:{i}",))
        for i in range(1, 5)
    ),
    Case("ggcr-layout-test_index_one_image", "formats", "ggcr-layout-test_index_one_image", "oci", tags=("ggcr/one:latest",)),
    Case("app.oci", "fixtures", "app.oci", "oci", tags=("acme/app:1.0",)),
    Case("app.oci.tar", "fixtures", "app.oci.tar", "oci-archive", "1.0", ("acme/app:1.0",)),
    Case("app-zstd.oci", "fixtures", "app-zstd.oci", "oci", "1.0", ("acme/app:zstd",)),
    Case("app-docker.oci", "fixtures", "app-docker.oci", "oci", "1.0", ("acme/app:docker",)),
    Case("tool.oci", "fixtures", "tool.oci", "oci", "2.0", ("acme/tool:2.0",)),
    Case("shared.oci", "fixtures", "shared.oci", "oci"),
    Case("multi.oci", "fixtures", "multi.oci", "oci", "1.0", ("acme/multi:1.0",)),
    Case("multi-docker.oci", "fixtures", "multi-docker.oci", "oci", "1.0", ("acme/multi:docker",)),
]
OUTPUTS = ("docker-archive", "oci", "oci-archive")
COMPRESSIONS = ("zstd", "gzip", "none")

PARAMS = [
    pytest.param(case, output, compression, id=f"{case.id}-{output}-{compression}")
    for case in DOCKER_CASES
    for compression in COMPRESSIONS
    for output in OUTPUTS
] + [pytest.param(case, output, None, id=f"{case.id}-{output}") for case in OCI_CASES for output in OUTPUTS]


@dataclass
class Root:
    """What the source says about one image it holds."""

    names: list[tuple[str, str]]
    digest: str | None  # manifest/index digest in an OCI source; None for docker-archives
    media_type: str | None
    images: list[FlatImage]


def _platform(config: bytes) -> str:
    obj = json.loads(config)
    return f"{obj.get('os')}/{obj.get('architecture')}"


def expected_roots(case: Case) -> list[Root]:
    """The images in the source, read without lfsreg."""
    path = sample(case.kind, case.file)
    forced = [familiar(t) for t in case.tags]
    roots = []
    if case.transport == "docker-archive":
        for entry in read_docker_archive(path):
            layers = [({"digest": sha256(b), "mediaType": ""}, b) for b in entry.layers]
            image = FlatImage("", {}, None, entry.config, layers)
            roots.append(Root(forced or [familiar(t) for t in entry.repo_tags or []], None, None, [image]))
        return roots
    layout = Layout(path)
    for entry in layout.entries:
        ref = (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if case.selector is not None and ref != case.selector:
            continue
        names = forced or ([familiar(ref)] if ref and ":" in ref else [])
        media_type = media_type_of(layout.json_blob(entry["digest"]))
        roots.append(Root(names, entry["digest"], media_type, layout.flatten(entry["digest"])))
    return roots


def check_oci_image(out: FlatImage, src: FlatImage, compression: str | None) -> None:
    """One pulled manifest against the source manifest it came from."""
    assert out.config == src.config, "config bytes changed"
    assert sha256(out.config) == out.manifest["config"]["digest"] == sha256(src.config)
    assert out.platform == src.platform
    assert len(out.layers) == len(src.layers) == len(src.diff_ids)
    for i, ((odesc, obytes), (sdesc, sbytes), diff_id) in enumerate(zip(out.layers, src.layers, src.diff_ids, strict=True)):
        assert sha256(decompress(obytes)) == diff_id, f"layer {i}: content does not match diff_id {diff_id}"
        if compression_of(sbytes) != "none":
            assert odesc["digest"] == sdesc["digest"], f"layer {i}: a compressed layer changed digest"
            assert obytes == sbytes
        else:
            expected = compression or "zstd"
            assert odesc["mediaType"] == LAYER_TYPE_FOR[expected], f"layer {i}: {odesc['mediaType']}"
            assert compression_of(obytes) == expected
            if expected == "none":
                assert odesc["digest"] == diff_id


@pytest.mark.parametrize(("case", "output", "compression"), PARAMS)
def test_roundtrip(tmp_path, registry, case, output, compression):
    roots = expected_roots(case)
    assert roots, f"{case.id}: the source holds no image to push"
    reg = lfsreg.Registry(str(registry))
    result = reg.push([case.source()], tags=list(case.tags), compression=compression or "zstd")

    pushed = {(i.name, i.tag): str(i.digest) for i in result.images}
    assert sorted(pushed) == sorted(n for r in roots for n in r.names)
    assert result.commit is not None and main_ref(registry) == result.commit.encode()

    for n, root in enumerate(roots):
        name, tag = root.names[0]
        digest = pushed[(name, tag)]
        assert all(pushed[other] == digest for other in root.names), "one image, several names, several digests"
        if root.digest is not None:
            assert digest == root.digest, "the manifest or index digest changed on push"
        out = tmp_path / f"out-{n}"
        out.mkdir()
        if output == "docker-archive":
            for image in root.images:
                dest = out / f"{len(list(out.iterdir()))}.tar"
                platform = image.platform if len(root.images) > 1 else None
                pulled = reg.pull([f"{name}:{tag}"], f"docker-archive:{dest}", platform=platform)
                assert [(str(r), str(d)) for r, d in pulled] == [(f"{name}:{tag}", digest)]
                entries = check_docker_archive_output(dest)
                assert len(entries) == 1
                assert entries[0].config == image.config, "config bytes changed (image ID differs)"
                assert sha256(entries[0].config) == sha256(image.config)
                assert entries[0].diff_ids == image.diff_ids
                assert [familiar(t) for t in entries[0].repo_tags or []] == [(name, tag)]
            continue
        if output == "oci":
            dest, ref = out / "layout", tag
            reg.pull([f"{name}:{tag}"], f"oci:{dest}")
        else:
            dest, ref = out / "image.oci.tar", "pulled"
            reg.pull([f"{name}:{tag}"], f"oci-archive:{dest}:{ref}")
        layout = verify_layout(dest)
        entry = layout.entry(ref)
        assert entry["digest"] == digest
        doc = layout.json_blob(digest)
        assert entry["mediaType"] == media_type_of(doc)
        if root.media_type is not None:
            assert media_type_of(doc) == root.media_type
        images = layout.flatten(digest)
        assert len(images) == len(root.images)
        for got, want in zip(images, root.images, strict=True):
            check_oci_image(got, want, compression)


def test_oci_artifact_layout_roundtrip(tmp_path, registry):
    """ggcr-layout-test_index_media_type: a manifest with a Helm config and an ``application/tar+gzip`` layer.

    A registry stores such artifacts byte for byte (OCI distribution does); it goes back out
    to an OCI layout unchanged, while a docker-archive, which cannot hold it, is refused with
    a one-line error.
    """
    case = Case("media_type", "formats", "ggcr-layout-test_index_media_type", "oci", tags=("ggcr/artifact:1",))
    (root,) = expected_roots(case)
    proc = run_cli("push", registry, case.source(), "--tag", "ggcr/artifact:1")
    assert_ok(proc)
    for output in ("oci", "oci-archive"):
        dest = tmp_path / f"out.{output}"
        assert_ok(run_cli("pull", registry, "ggcr/artifact:1", "-o", f"{output}:{dest}:x"))
        layout = verify_layout(dest)
        assert layout.entry("x")["digest"] == root.digest
        for blob in (root.digest, *(d["digest"] for d in layout.json_blob(root.digest)["layers"])):
            assert layout.blob(blob) == Layout(sample(case.kind, case.file)).blob(blob)
    before = snapshot(registry)
    proc = run_cli("pull", registry, "ggcr/artifact:1", "-o", f"docker-archive:{tmp_path / 'a.tar'}")
    assert_error(proc, 2, "ggcr/artifact:1", "not a container image")
    assert not (tmp_path / "a.tar").exists()
    assert snapshot(registry) == before


def test_multi_image_tarball_is_one_commit(tmp_path, registry):
    before = commit_count(registry)
    result = lfsreg.Registry(str(registry)).push([f"docker-archive:{sample('formats', 'ggcr-test_bundle.tar')}"])
    assert commit_count(registry) == before + 1
    entries = read_docker_archive(sample("formats", "ggcr-test_bundle.tar"))
    assert len(entries) == 2
    assert sorted((i.name, i.tag) for i in result.images) == sorted(familiar(t) for e in entries for t in e.repo_tags or [])
    # both images, pulled into one docker-archive, come back in the order asked for
    names = [f"{n}:{t}" for e in entries for n, t in [familiar(e.repo_tags[0])]]
    dest = tmp_path / "both.tar"
    lfsreg.Registry(str(registry)).pull(names, f"docker-archive:{dest}")
    out = check_docker_archive_output(dest)
    assert [e.config for e in out] == [e.config for e in entries]
    assert [[familiar(t) for t in e.repo_tags or []] for e in out] == [[familiar(t) for t in e.repo_tags or []] for e in entries]


def test_several_sources_and_layout_roots_one_commit(registry):
    reg = lfsreg.Registry(str(registry))
    before = commit_count(registry)
    result = reg.push([f"oci:{sample('fixtures', 'shared.oci')}"])
    assert commit_count(registry) == before + 1
    assert len(result.images) == 3
    result = reg.push(
        [f"docker-archive:{sample('fixtures', 'base.docker.tar')}", f"docker-archive:{sample('formats', 'ggcr-test_link.tar')}"]
    )
    assert commit_count(registry) == before + 2
    assert {(i.name, i.tag) for i in result.images} == {
        ("acme/base", "1.0"),
        ("bazel/v1/tarball", "test_image_1"),
        ("bazel/v1/tarball", "test_image_3"),
    }


@pytest.mark.parametrize("layout_name", ["multi.oci", "multi-docker.oci"])
def test_index_is_stored_as_index(tmp_path, registry, layout_name):
    src = Layout(sample("fixtures", layout_name))
    digest = src.entry("1.0")["digest"]
    lfsreg.Registry(str(registry)).push([f"oci:{src.path}:1.0"], tags=["acme/multi:1.0"])
    files = tree_files(registry, "")
    assert files[f"{registry_layout.NEW.tags_dir('acme/multi')}/1.0"] == f"{digest}\n".encode()
    hexdigest = digest.split(":")[1]
    assert files[registry_layout.NEW.hex_path("blobs", hexdigest)] == src.blob(digest)
    for child in src.json_blob(digest)["manifests"]:
        h = child["digest"].split(":")[1]
        assert files[registry_layout.NEW.hex_path("blobs", h)] == src.blob(child["digest"])
    # pulled to oci: the full index, same digest, every platform's blobs
    dest = tmp_path / "out"
    lfsreg.Registry(str(registry)).pull(["acme/multi:1.0"], f"oci:{dest}")
    layout = verify_layout(dest)
    assert layout.entry("1.0")["digest"] == digest
    assert layout.blob(digest) == src.blob(digest)
    assert {i.platform for i in layout.flatten(digest)} == {"linux/amd64", "linux/arm64"}


@pytest.mark.parametrize("layout_name", ["multi.oci", "multi-docker.oci"])
@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_platform_selection_to_docker_archive(tmp_path, registry, layout_name, platform):
    src = Layout(sample("fixtures", layout_name))
    by_platform = {i.platform: i for i in src.flatten(src.entry("1.0")["digest"])}
    assert_ok(run_cli("push", registry, f"oci:{src.path}:1.0", "--tag", "acme/multi:1.0"))
    dest = tmp_path / "out.tar"
    assert_ok(run_cli("pull", registry, "acme/multi:1.0", "--platform", platform, "-o", f"docker-archive:{dest}"))
    (entry,) = check_docker_archive_output(dest)
    assert entry.config == by_platform[platform].config
    assert _platform(entry.config) == platform


def test_unknown_platform_is_an_error(tmp_path, registry):
    assert_ok(run_cli("push", registry, f"oci:{sample('fixtures', 'multi.oci')}:1.0", "--tag", "acme/multi:1.0"))
    before = snapshot(registry)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("pull", registry, "acme/multi:1.0", "--platform", "linux/s390x", "-o", f"docker-archive:{out / 'x.tar'}")
    assert_error(proc, 1, "linux/s390x")
    assert list(out.iterdir()) == []
    assert snapshot(registry) == before


def test_registry_layout(registry):
    """The tree and LFS store a push writes follow the documented format."""
    reg = lfsreg.Registry(str(registry))
    result = reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], compression="zstd")
    files = tree_files(registry, "")
    assert json.loads(files["lfsreg.json"]) == {"format": "lfsreg", "version": 4}  # a new registry
    assert "layers/** filter=lfs" in files[".gitattributes"].decode()
    (image,) = result.images
    # version 4: the name under three levels of its sha256's hex (sha256("acme/app") = 5f8...), readable below them
    assert files["repositories/5/f/8/acme/app/_tags/1.0"] == f"{image.digest}\n".encode()
    pointers = {p: c for p, c in files.items() if p.startswith("layers/")}
    assert len(pointers) == 3
    for path, content in pointers.items():
        _, algorithm, *shards, hexdigest = path.split("/")
        assert algorithm == "sha256" and shards == [hexdigest[0], hexdigest[1], hexdigest[2]]  # versions 3 and 4: three one-digit levels
        lines = content.decode().splitlines()
        assert lines[0] == "version https://git-lfs.github.com/spec/v1"
        assert f"oid sha256:{hexdigest}" in lines
        size = int(next(x for x in lines if x.startswith("size "))[5:])
        obj = registry / "lfs" / "objects" / hexdigest[:2] / hexdigest[2:4] / hexdigest
        assert obj.is_file()
        data = obj.read_bytes()
        assert len(data) == size and sha256(data) == f"sha256:{hexdigest}"
        assert compression_of(data) == "zstd"
    assert len(lfs_objects(registry)) == 3
    for path, content in files.items():
        if path.startswith("blobs/"):
            assert sha256(content) == "sha256:" + path.rsplit("/", 1)[1]
    (entry,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    diffids = {p.rsplit("/", 1)[1] for p in files if p.startswith("diffids/")}
    assert diffids == {d.split(":")[1] for d in entry.diff_ids}
    staging = registry / "lfs" / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_pull_two_refs_into_one_layout(tmp_path, registry):
    reg = lfsreg.Registry(str(registry))
    reg.push([f"oci:{sample('fixtures', 'shared.oci')}"])
    dest = tmp_path / "layout"
    reg.pull(["acme/app:1.0"], f"oci:{dest}:app")
    reg.pull(["acme/tool:2.0"], f"oci:{dest}:tool")
    layout = verify_layout(dest)
    src = Layout(sample("fixtures", "shared.oci"))
    assert layout.entry("app")["digest"] == src.entry("acme/app:1.0")["digest"]
    assert layout.entry("tool")["digest"] == src.entry("acme/tool:2.0")["digest"]


def test_index_media_types_preserved(registry):
    """Roots whose index.json entry uses other media types are stored with the blob's own type."""
    reg = lfsreg.Registry(str(registry))
    src = Layout(sample("formats", "ggcr-layout-test_index"))
    for entry in src.entries:
        ref = entry["annotations"]["org.opencontainers.image.ref.name"]
        reg.push([f"oci:{src.path}:{ref}"], tags=[f"ggcr/test-index:{ref}"])
    info = {t.tag: str(t.digest) for t in reg.tags("ggcr/test-index")}
    assert info == {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"] for e in src.entries}
    for entry in src.entries:
        ref = entry["annotations"]["org.opencontainers.image.ref.name"]
        got = reg.inspect(f"ggcr/test-index:{ref}")
        assert got["digest"] == entry["digest"]
        assert got["mediaType"] == media_type_of(src.json_blob(entry["digest"]))
        assert (got["mediaType"] in INDEX_TYPES) == ("images" in got)


# -- interop with real skopeo ---------------------------------------------------------------------------
def skopeo(tmp_path, *args, stdout_bytes=False):
    """Run stock skopeo (skip outside CI / fail in CI when it is missing); return its stdout."""
    exe = require_tool("skopeo")
    tmp = tmp_path / "skopeo-tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(tmp)}
    proc = subprocess.run([exe, "--insecure-policy", *(str(a) for a in args)], capture_output=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, f"skopeo {args} failed:\n{proc.stderr.decode(errors='replace')}"
    return proc.stdout if stdout_bytes else proc.stdout.decode()


def _pushed_app(registry, compression):
    """acme/app:1.0 in ``registry``: from app.oci (gzip layers kept) or app.docker.tar compressed as asked."""
    reg = lfsreg.Registry(str(registry))
    if compression == "source-gzip":
        reg.push([f"oci:{sample('fixtures', 'app.oci')}:1.0"], tags=["acme/app:1.0"])
    else:
        reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], compression=compression)
    (entry,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    return reg, entry


@pytest.mark.interop
@pytest.mark.parametrize("compression", ["source-gzip", "zstd", "gzip", "none"])
def test_skopeo_reads_docker_archive_output(tmp_path, registry, compression):
    reg, source = _pushed_app(registry, compression)
    out = tmp_path / "app.tar"
    reg.pull(["acme/app:1.0"], f"docker-archive:{out}")
    info = json.loads(skopeo(tmp_path, "inspect", f"docker-archive:{out}"))
    assert info["Layers"] == source.diff_ids
    assert info["Architecture"] == json.loads(source.config)["architecture"]
    assert skopeo(tmp_path, "inspect", "--config", "--raw", f"docker-archive:{out}", stdout_bytes=True) == source.config
    copied = tmp_path / "copied"
    skopeo(tmp_path, "copy", f"docker-archive:{out}", f"oci:{copied}:x")
    layout = verify_layout(copied)
    (image,) = layout.flatten(layout.entry("x")["digest"])
    # skopeo converts a docker-archive's config to OCI (re-serialising it): same content, maybe other bytes
    assert json.loads(image.config) == json.loads(source.config)
    assert [sha256(decompress(b)) for _, b in image.layers] == source.diff_ids


@pytest.mark.interop
def test_skopeo_reads_multi_image_docker_archive(tmp_path, registry):
    reg = lfsreg.Registry(str(registry))
    reg.push([f"docker-archive:{sample('formats', 'ggcr-test_bundle.tar')}"])
    entries = read_docker_archive(sample("formats", "ggcr-test_bundle.tar"))
    names = [f"{n}:{t}" for e in entries for n, t in [familiar(e.repo_tags[0])]]
    out = tmp_path / "bundle.tar"
    reg.pull(names, f"docker-archive:{out}")
    for i, entry in enumerate(entries):
        raw = skopeo(tmp_path, "inspect", "--config", "--raw", f"docker-archive:{out}:@{i}", stdout_bytes=True)
        assert raw == entry.config
        name = names[i] if "/" in names[i] or "." in names[i].split(":")[0] else f"docker.io/library/{names[i]}"
        raw = skopeo(tmp_path, "inspect", "--config", "--raw", f"docker-archive:{out}:{name}", stdout_bytes=True)
        assert raw == entry.config


@pytest.mark.interop
@pytest.mark.parametrize("compression", ["source-gzip", "zstd", "gzip", "none"])
def test_skopeo_reads_oci_outputs(tmp_path, registry, compression):
    reg, source = _pushed_app(registry, compression)
    digest = str(reg.tags("acme/app")[0].digest)
    lay = tmp_path / "layout"
    reg.pull(["acme/app:1.0"], f"oci:{lay}:r1")
    manifest = skopeo(tmp_path, "inspect", "--raw", f"oci:{lay}:r1", stdout_bytes=True)
    assert sha256(manifest) == digest
    info = json.loads(skopeo(tmp_path, "inspect", f"oci:{lay}:r1"))
    assert info["Digest"] == digest
    assert skopeo(tmp_path, "inspect", "--config", "--raw", f"oci:{lay}:r1", stdout_bytes=True) == source.config
    skopeo(tmp_path, "copy", "--preserve-digests", f"oci:{lay}:r1", f"oci:{tmp_path / 'copy1'}:y")
    assert verify_layout(tmp_path / "copy1").entry("y")["digest"] == digest

    archive = tmp_path / "app.oci.tar"
    reg.pull(["acme/app:1.0"], f"oci-archive:{archive}:r2")
    skopeo(tmp_path, "copy", "--preserve-digests", f"oci-archive:{archive}:r2", f"oci:{tmp_path / 'copy2'}:z")
    copied = verify_layout(tmp_path / "copy2")
    assert copied.entry("z")["digest"] == digest
    (image,) = copied.flatten(digest)
    assert image.config == source.config
    # and what skopeo wrote from lfsreg's output goes back in unchanged
    again = reg.push([f"oci:{tmp_path / 'copy2'}:z"], tags=["acme/app:again"])
    assert str(again.images[0].digest) == digest
    assert again.layers_uploaded == 0


@pytest.mark.interop
@pytest.mark.parametrize("layout_name", ["multi.oci", "multi-docker.oci"])
def test_skopeo_reads_index_outputs(tmp_path, registry, layout_name):
    src = Layout(sample("fixtures", layout_name))
    digest = src.entry("1.0")["digest"]
    reg = lfsreg.Registry(str(registry))
    reg.push([f"oci:{src.path}:1.0"], tags=["acme/multi:1.0"])
    if layout_name == "multi.oci":
        # skopeo 1.9.3 cannot select a Docker manifest list from an OCI layout's index.json, not even
        # in the layout it wrote itself (fixtures/multi-docker.oci), so only the OCI index goes this way
        reg.pull(["acme/multi:1.0"], f"oci:{tmp_path / 'lay'}")
        assert skopeo(tmp_path, "inspect", "--raw", f"oci:{tmp_path / 'lay'}:1.0", stdout_bytes=True) == src.blob(digest)
        reg.pull(["acme/multi:1.0"], f"oci-archive:{tmp_path / 'm.tar'}:m")
        skopeo(tmp_path, "copy", "--all", "--preserve-digests", f"oci-archive:{tmp_path / 'm.tar'}:m", f"oci:{tmp_path / 'copy'}:c")
        assert verify_layout(tmp_path / "copy").entry("c")["digest"] == digest
    for platform in ("linux/amd64", "linux/arm64"):
        out = tmp_path / f"{platform.replace('/', '-')}.tar"
        reg.pull(["acme/multi:1.0"], f"docker-archive:{out}", platform=platform)
        info = json.loads(skopeo(tmp_path, "inspect", f"docker-archive:{out}"))
        assert f"{info['Os']}/{info['Architecture']}" == platform


@pytest.mark.interop
@pytest.mark.parametrize(
    ("dest", "source", "written"),
    [
        pytest.param("oci:{d}/lay:1.0", "oci:{d}/lay:1.0", "lay", id="oci"),
        pytest.param("oci-archive:{d}/a.tar:1.0", "oci-archive:{d}/a.tar:1.0", "a.tar", id="oci-archive"),
        pytest.param("docker-archive:{d}/d.tar:acme/app:sk", "docker-archive:{d}/d.tar", "d.tar", id="docker-archive"),
        pytest.param("oci:{d}/zstd:1.0", "oci:{d}/zstd:1.0", "zstd", id="oci-zstd"),
    ],
)
def test_lfsreg_reads_what_skopeo_writes(tmp_path, registry, dest, source, written):
    """Images skopeo writes now (from the fixtures) push and pull back with the same config and digests."""
    d = tmp_path / "sk"
    d.mkdir()
    extra = ["--dest-compress-format", "zstd", "--dest-compress"] if "zstd" in dest else []
    skopeo(tmp_path, "copy", *extra, f"docker-archive:{sample('fixtures', 'app.docker.tar')}", dest.format(d=d))
    path = d / written
    reg = lfsreg.Registry(str(registry))
    result = reg.push([source.format(d=d)], tags=["acme/app:sk"])
    (pushed,) = result.images
    if source.startswith("docker-archive"):
        (archived,) = read_docker_archive(path)
        config = archived.config
    else:
        layout = verify_layout(path)
        assert str(pushed.digest) == layout.entries[0]["digest"], "the manifest skopeo wrote changed digest"
        (image,) = layout.flatten(layout.entries[0]["digest"])
        config = image.config
        if "zstd" in dest:
            assert {d["mediaType"] for d, _ in image.layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    out = tmp_path / "out.tar"
    reg.pull(["acme/app:sk"], f"docker-archive:{out}")
    (entry,) = check_docker_archive_output(out)
    assert entry.config == config


# -- more round-trip properties -------------------------------------------------------------------------
@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("output", ["docker-archive", "oci-archive"])
def test_pull_then_push_again_is_idempotent(tmp_path, registry, compression, output):
    """What lfsreg writes, pushed back, is the same image: same digest, nothing uploaded, no new commit."""
    reg = lfsreg.Registry(str(registry))
    first = reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], compression=compression)
    (image,) = first.images
    dest = tmp_path / "out.tar"
    reg.pull(["acme/app:1.0"], f"{output}:{dest}" + (":x" if output == "oci-archive" else ""))
    head = main_ref(registry)
    again = reg.push([f"{output}:{dest}" + (":x" if output == "oci-archive" else "")], tags=["acme/app:1.0"], compression=compression)
    assert [str(i.digest) for i in again.images] == [str(image.digest)]
    assert again.layers_uploaded == 0
    assert main_ref(registry) == head


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_docker_archive_with_compressed_layers_keeps_them(tmp_path, registry, algorithm):
    """``docker load`` accepts compressed layer files; lfsreg stores them as they are."""
    packed = tmp_path / f"app-{algorithm}.tar"
    compress = (lambda b: gzip.compress(b, mtime=0)) if algorithm == "gzip" else zstandard.ZstdCompressor().compress
    with tarfile.open(sample("fixtures", "app.docker.tar")) as src, tarfile.open(packed, "w") as dst:
        layers = set(json.loads(src.extractfile("manifest.json").read())[0]["Layers"])
        for info in src.getmembers():
            if info.isfile() and info.name in layers:
                data = compress(src.extractfile(info).read())
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
            else:
                dst.addfile(info, src.extractfile(info) if info.isfile() else None)
    (entry,) = read_docker_archive(packed)
    assert {compression_of(b) for b in entry.layers} == {algorithm}
    reg = lfsreg.Registry(str(registry))
    reg.push([f"docker-archive:{packed}"], compression="none")
    reg.pull(["acme/app:1.0"], f"oci:{tmp_path / 'lay'}")
    layout = verify_layout(tmp_path / "lay")
    (image,) = layout.flatten(layout.entry("1.0")["digest"])
    assert [d["digest"] for d, _ in image.layers] == [sha256(b) for b in entry.layers]
    assert [d["mediaType"] for d, _ in image.layers] == [LAYER_TYPE_FOR[algorithm]] * 3
    reg.pull(["acme/app:1.0"], f"docker-archive:{tmp_path / 'out.tar'}")
    (out,) = check_docker_archive_output(tmp_path / "out.tar")
    assert out.config == entry.config


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(("formats", "ggcr-test_bundle.tar", ":@1"), None, id="archive-index"),
        pytest.param(
            ("fixtures", "app-tags.docker.tar", ":acme/app:latest"),
            [("acme/app", "latest")],
            id="archive-name",
        ),
        pytest.param(
            ("fixtures", "app-tags.docker.tar", ":docker.io/acme/app:1.0"),
            [("acme/app", "1.0")],
            id="archive-full-name",
        ),
        pytest.param(("fixtures", "app-tags.docker.tar", ""), [("acme/app", "1.0"), ("acme/app", "latest")], id="archive-all-tags"),
        pytest.param(("fixtures", "shared.oci", ":acme/tool:2.0"), [("acme/tool", "2.0")], id="layout-ref"),
    ],
)
def test_source_selectors(registry, source, expected):
    kind, name, selector = source
    transport = "oci" if name.endswith(".oci") else "docker-archive"
    result = lfsreg.Registry(str(registry)).push([f"{transport}:{sample(kind, name)}{selector}"])
    got = sorted((i.name, i.tag) for i in result.images)
    if expected is None:  # @1: the second manifest.json entry, with its own names
        expected = sorted(familiar(t) for t in read_docker_archive(sample(kind, name))[1].repo_tags)
    assert got == sorted(expected)


def test_unknown_selector_is_an_error(tmp_path, registry):
    before = snapshot(registry)
    proc = run_cli("push", registry, f"docker-archive:{sample('formats', 'ggcr-test_bundle.tar')}:@7")
    assert_error(proc, 2, "no image number 7")
    proc = run_cli("push", registry, f"docker-archive:{sample('fixtures', 'app.docker.tar')}:acme/app:2.0")
    assert_error(proc, 1, "acme/app:2.0")
    assert snapshot(registry) == before


def test_index_to_docker_archive_defaults_to_host_platform(tmp_path, registry):
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(host.machine().lower())
    if arch is None:
        pytest.skip(f"fixtures have no image for {host.machine()}")
    src = Layout(sample("fixtures", "multi.oci"))
    by_platform = {i.platform: i for i in src.flatten(src.entry("1.0")["digest"])}
    reg = lfsreg.Registry(str(registry))
    reg.push([f"oci:{src.path}:1.0"], tags=["acme/multi:1.0"])
    reg.pull(["acme/multi:1.0"], f"docker-archive:{tmp_path / 'x.tar'}")
    (entry,) = check_docker_archive_output(tmp_path / "x.tar")
    assert entry.config == by_platform[f"linux/{arch}"].config


def test_pull_same_ref_replaces_layout_entry(tmp_path, registry):
    reg = lfsreg.Registry(str(registry))
    reg.push([f"oci:{sample('fixtures', 'shared.oci')}"])
    dest = tmp_path / "layout"
    reg.pull(["acme/app:1.0"], f"oci:{dest}:x")
    reg.pull(["acme/tool:2.0"], f"oci:{dest}:x")
    layout = verify_layout(dest)
    assert len(layout.entries) == 1
    assert layout.entry("x")["digest"] == Layout(sample("fixtures", "shared.oci")).entry("acme/tool:2.0")["digest"]
