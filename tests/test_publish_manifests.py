"""ops/publish.py: manifests put as one commit each after blobs were uploaded to LFS; deletes; bad input writes nothing."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from conftest import commit_count, concurrently, main_ref, read_docker_archive, tree_files
from serveput_images import OCI_INDEX, OCI_MANIFEST, dumps, image, index_of, sha

from lfsreg.api import Registry
from lfsreg.digest import Digest
from lfsreg.errors import BlobNotFound, CorruptContentError, ImageNotFound, InvalidImageError, InvalidReference, PermissionDeniedError
from lfsreg.ops.delete import delete_blob, delete_manifest, delete_tag
from lfsreg.ops.publish import put_manifest
from lfsreg.registry import layout
from lfsreg.serve.uploads import Uploads


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(str(tmp_path / "reg.git"))
    r.init()
    yield r
    r.close()


def upload(reg: Registry, blobs: dict[str, bytes]) -> Uploads:
    uploads = Uploads(reg._lfs())
    for digest, data in blobs.items():
        uploads.monolithic(Digest.parse(digest), io.BytesIO(data), len(data))
    return uploads


def put(reg: Registry, data: bytes, *, tags=(), digest=None, content_type=OCI_MANIFEST):
    return put_manifest(reg._publisher(), reg._lfs(), "app/web", data, content_type, tags=tags, digest=digest)


def test_put_by_tag_is_one_commit_that_pull_reads(reg: Registry, tmp_path: Path) -> None:
    im = image("hello")
    upload(reg, im.blobs)
    before = commit_count(Path(reg.location))
    result = put(reg, im.manifest, tags=("v1",))
    assert str(result.digest) == im.digest and result.commit is not None and result.subject is None
    assert commit_count(Path(reg.location)) == before + 1
    files = tree_files(Path(reg.location), "")
    assert files[f"{layout.NEW.tags_dir('app/web')}/v1"] == f"{im.digest}\n".encode()
    assert files[layout.NEW.hex_path("blobs", im.digest[7:])] == im.manifest  # exact bytes
    config = sha(im.config)
    assert files[layout.NEW.hex_path("blobs", config[7:])] == im.config
    layer = sha(im.layer)
    assert f"oid {layer}\nsize {len(im.layer)}\n".encode() in files[layout.NEW.hex_path("layers", layer[7:])]
    out = tmp_path / "out.tar"
    reg.pull(["app/web:v1"], f"docker-archive:{out}")
    (entry,) = read_docker_archive(out)
    assert entry.repo_tags == ["app/web:v1"]


def test_put_by_digest_then_index_with_tag(reg: Registry) -> None:
    a, b = image("a", compression="gzip"), image("b", compression="zstd", arch="arm64")
    upload(reg, {**a.blobs, **b.blobs})
    for im in (a, b):
        assert put(reg, im.manifest, digest=Digest.parse(im.digest)).commit
    index = index_of(a, b)
    result = put(reg, index, tags=("multi",), content_type=OCI_INDEX)
    assert result.media_type == OCI_INDEX
    assert [t.tag for t in reg.tags("app/web")] == ["multi"]
    assert str(reg.view().resolve(__import__("lfsreg.reference").reference.ImageRef.parse("app/web:multi"))) == sha(index)


def test_subject_is_returned_and_stored(reg: Registry) -> None:
    base = image("base")
    upload(reg, base.blobs)
    put(reg, base.manifest, tags=("v1",))
    ref = image("sig", subject=base.descriptor())
    upload(reg, ref.blobs)
    result = put(reg, ref.manifest, digest=Digest.parse(ref.digest))
    assert str(result.subject) == base.digest
    assert reg.view().blob(Digest.parse(ref.digest)) == ref.manifest


def test_same_manifest_again_changes_nothing(reg: Registry) -> None:
    im = image("same")
    upload(reg, im.blobs)
    put(reg, im.manifest, tags=("v1",))
    assert put(reg, im.manifest, tags=("v1",)).commit is None


@pytest.mark.parametrize(
    "case",
    ["missing-layer", "missing-config", "missing-child", "wrong-digest", "wrong-type", "not-json", "bad-tag", "bad-name", "size-lies"],
)
def test_bad_input_writes_nothing(reg: Registry, case: str) -> None:
    im = image("x")
    blobs = dict(im.blobs)
    data, ctype, digest, tags, name = im.manifest, OCI_MANIFEST, None, ("v1",), "app/web"
    expected: type[Exception] = BlobNotFound
    if case == "missing-layer":
        del blobs[sha(im.layer)]
    elif case == "missing-config":
        del blobs[sha(im.config)]
    elif case == "missing-child":
        data, ctype = index_of(im), OCI_INDEX
    elif case == "wrong-digest":
        digest, expected = Digest.parse(sha(b"other")), CorruptContentError
    elif case == "wrong-type":
        ctype, expected = OCI_INDEX, InvalidImageError
    elif case == "not-json":
        data, expected = b"{nope", InvalidImageError
    elif case == "bad-tag":
        tags, expected = ("-bad",), InvalidReference
    elif case == "bad-name":
        name, expected = "App/Web", InvalidReference
    elif case == "size-lies":
        obj = __import__("json").loads(im.manifest)
        obj["layers"][0]["size"] += 1
        data = dumps(obj)
    upload(reg, blobs)
    before = main_ref(Path(reg.location))
    with pytest.raises(expected):
        put_manifest(reg._publisher(), reg._lfs(), name, data, ctype, tags=tags, digest=digest)
    assert main_ref(Path(reg.location)) == before


def test_delete_tag_manifest_blob(reg: Registry) -> None:
    im = image("del")
    upload(reg, im.blobs)
    put(reg, im.manifest, tags=("v1", "v2", "v3"))
    pub = reg._publisher()
    delete_tag(pub, "app/web", "v1")
    assert [t.tag for t in reg.tags("app/web")] == ["v2", "v3"]
    with pytest.raises(ImageNotFound):
        delete_tag(pub, "app/web", "v1")
    delete_manifest(pub, "app/web", Digest.parse(im.digest))  # its tags go with it
    assert not reg.view().tags("app/web")
    assert not reg.view().has_blob(Digest.parse(im.digest))
    with pytest.raises(ImageNotFound):
        delete_manifest(pub, "app/web", Digest.parse(im.digest))
    delete_blob(pub, "app/web", Digest.parse(sha(im.config)))
    assert not reg.view().has_blob(Digest.parse(sha(im.config)))
    delete_blob(pub, "app/web", Digest.parse(sha(im.layer)))
    assert not reg.view().has_layer(Digest.parse(sha(im.layer)))
    with pytest.raises(BlobNotFound):
        delete_blob(pub, "app/web", Digest.parse(sha(im.layer)))


def test_delete_keeps_what_another_name_needs(reg: Registry) -> None:
    im = image("shared")
    upload(reg, im.blobs)
    put(reg, im.manifest, tags=("v1",))
    put_manifest(reg._publisher(), reg._lfs(), "other", im.manifest, OCI_MANIFEST, tags=("v1",))
    pub = reg._publisher()
    with pytest.raises(PermissionDeniedError):
        delete_blob(pub, "app/web", Digest.parse(sha(im.layer)))
    delete_manifest(pub, "app/web", Digest.parse(im.digest))
    assert reg.view().has_blob(Digest.parse(im.digest))  # other:v1 still needs it
    assert [t.tag for t in reg.tags("other")] == ["v1"]


def test_concurrent_puts_of_different_tags_both_land(tmp_path: Path) -> None:
    location = str(tmp_path / "reg.git")
    Registry(location).init()
    images = [image(f"c{i}") for i in range(6)]
    with Registry(location) as r:
        upload(r, {d: b for im in images for d, b in im.blobs.items()})

    def one(i: int) -> None:
        with Registry(location) as r:
            put_manifest(r._publisher(), r._lfs(), "app/web", images[i].manifest, OCI_MANIFEST, tags=(f"t{i}",))

    assert not concurrently(one, len(images))
    with Registry(location) as r:
        assert [t.tag for t in r.tags("app/web")] == [f"t{i}" for i in range(len(images))]
    subprocess.run(["git", "--git-dir", location, "fsck", "--strict"], check=True, capture_output=True)
