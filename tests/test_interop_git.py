"""Interop with stock git + git-lfs, both ways (like dulwich's compat tests).

* lfsreg writes, git reads: a clone (smudging, or ``GIT_LFS_SKIP_SMUDGE=1`` then
  ``git lfs pull``) checks out real layers, clean, with canonical pointers in the objects.
* git writes, lfsreg reads: a tag committed and pushed by git, then a whole image written
  only with git + git-lfs (the clean filter makes the pointers, the pre-push hook uploads
  the objects into ``REPO/lfs/objects``), are listed and pulled by lfsreg.
* lfsreg pushes on top of git's commits, and the clone fast-forwards to lfsreg's commit.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from gitenv import isolated_git_env, run_git
from imageverify import (
    FIXTURES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    digest_of,
    lfsreg,
    read_docker_archive,
    sha256_hex,
    skopeo_inspect,
    source_image,
    tags_of,
    verify_docker_archive,
    verify_oci_archive,
    verify_oci_layout,
)

from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.store import LocalLfsStore
from lfsreg.registry import hints, layout

pytestmark = pytest.mark.interop

LFS_VERSION = "https://git-lfs.github.com/spec/v1"


def canonical_pointer(oid: str, size: int) -> bytes:
    return f"version {LFS_VERSION}\noid sha256:{oid}\nsize {size}\n".encode()


def git_out(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return run_git(args, cwd=cwd, env=env).stdout.decode()


def tracked(work: Path, env: dict[str, str], prefix: str) -> list[str]:
    return sorted(git_out(["ls-tree", "-r", "--name-only", "HEAD", "--", prefix], work, env).split())


def lfs_object_files(repo: Path) -> set[str]:
    return {p.name for p in (repo / "lfs" / "objects").glob("*/*/*")}


def push_fixtures(repo: Path) -> None:
    """Three lfsreg commits: a zstd-recompressed docker-archive, three images sharing L1, an index."""
    lfsreg("push", repo, f"docker-archive:{FIXTURES / 'base.docker.tar'}", "--tag", "acme/base:docker")
    lfsreg("push", repo, f"oci:{FIXTURES / 'shared.oci'}")
    lfsreg("push", repo, f"oci:{FIXTURES / 'multi.oci'}:1.0", "--tag", "acme/multi:1.0")


def check_checkout(repo: Path, work: Path, env: dict[str, str]) -> None:
    """Everything a registry checkout must satisfy after the LFS objects were fetched."""
    assert git_out(["status", "--porcelain"], work, env) == ""

    layer_paths = tracked(work, env, "layers")
    assert layer_paths, "no layers in the registry"
    # every file under layers/ is the real layer: its sha256 is its name
    on_disk = sorted(str(p.relative_to(work)) for p in (work / "layers").rglob("*") if p.is_file())
    assert on_disk == layer_paths
    for rel in layer_paths:
        data = (work / rel).read_bytes()
        name = Path(rel).name
        assert rel == layout.NEW.hex_path("layers", name)
        assert sha256_hex(data) == name, f"{rel} is not the real layer (a pointer left unsmudged?)"
        # the same bytes as the object lfsreg stored
        assert (repo / "lfs" / "objects" / name[:2] / name[2:4] / name).read_bytes() == data

        # pointer in the git objects == git-lfs's own canonical pointer for the file
        in_git = run_git(["cat-file", "-p", f"HEAD:{rel}"], cwd=work, env=env).stdout
        by_git_lfs = run_git(["lfs", "pointer", f"--file={rel}"], cwd=work, env=env).stdout
        assert in_git == by_git_lfs
        assert in_git == canonical_pointer(name, len(data))

    # git lfs ls-files lists exactly the layer paths
    listed = sorted(git_out(["lfs", "ls-files", "--name-only"], work, env).split())
    assert listed == layer_paths
    run_git(["lfs", "fsck"], cwd=work, env=env)  # raises on failure

    # manifests, indexes and configs hash to their names
    blob_paths = tracked(work, env, "blobs")
    assert blob_paths
    for rel in blob_paths:
        assert sha256_hex((work / rel).read_bytes()) == Path(rel).name, rel
    # diffid records point at layers the checkout has
    for rel in tracked(work, env, "diffids"):
        record = json.loads((work / rel).read_text())
        hexd = record["digest"].removeprefix("sha256:")
        assert layout.NEW.hex_path("layers", hexd) in layer_paths
        assert record["size"] == (work / layout.NEW.hex_path("layers", hexd)).stat().st_size
    # tags name stored manifests; the names' pull hints name files of the checkout, by their git ids
    for rel in tracked(work, env, "repositories"):
        if rel.endswith(f"/{hints.FILE}"):
            for files in hints.parse((work / rel).read_bytes()).values():
                for entry, sha in files.items():
                    assert git_out(["rev-parse", f"HEAD:{hints.file_of(layout.NEW, entry)}"], work, env).strip() == sha.decode(), rel
            continue
        text = (work / rel).read_text()
        assert text.endswith("\n") and text.startswith("sha256:"), rel
        hexd = text.strip().removeprefix("sha256:")
        assert layout.NEW.hex_path("blobs", hexd) in blob_paths
    assert (work / ".gitattributes").read_bytes() == b"layers/** filter=lfs diff=lfs merge=lfs -text\n"
    assert json.loads((work / "lfsreg.json").read_text()) == {"format": "lfsreg", "version": 4}  # a new registry


# -- a. lfsreg writes, git + git-lfs read -------------------------------------------------------


@pytest.mark.parametrize("mode", ["smudge", "skip-smudge-then-lfs-pull"])
def test_git_clone_of_lfsreg_registry(tmp_path: Path, mode: str) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    push_fixtures(repo)
    # a layer shared by several images is stored (and listed) once
    tags = tags_of(repo)
    assert set(tags) == {"acme/base:docker", "acme/base:1.0", "acme/app:1.0", "acme/tool:2.0", "acme/multi:1.0"}

    clone_env = dict(env)
    if mode != "smudge":
        clone_env["GIT_LFS_SKIP_SMUDGE"] = "1"
    run_git(["clone", "--quiet", repo, "work"], cwd=tmp_path, env=clone_env)
    work = tmp_path / "work"
    if mode != "smudge":
        sample = tracked(work, env, "layers")[0]
        assert (work / sample).read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1\n")
        run_git(["lfs", "pull"], cwd=work, env=env)
    check_checkout(repo, work, env)

    # L1 (gzip, from shared.oci) is one file although three images use it
    l1 = "1aad48f277db4877fdee4593524fc67123d63b9ca4c6e63dc9b7dc06a876c8a0"
    assert (work / layout.NEW.hex_path("layers", l1)).is_file()
    users = [t for t, d in tags.items() if l1 in (work / layout.NEW.hex_path("blobs", d[7:])).read_text()]
    assert sorted(users) == ["acme/app:1.0", "acme/base:1.0", "acme/tool:2.0"]
    # the checkout's files are the objects of lfsreg's commit
    assert git_out(["rev-parse", "HEAD"], work, env) == git_out(["rev-parse", "main"], repo, env)
    run_git(["fsck", "--strict"], cwd=repo, env=env)


# -- b. git + git-lfs write, lfsreg reads -------------------------------------------------------


def clone(tmp_path: Path, repo: Path, env: dict[str, str]) -> Path:
    run_git(["clone", "--quiet", repo, "work"], cwd=tmp_path, env=env)
    return tmp_path / "work"


def commit_and_push(work: Path, env: dict[str, str], message: str) -> str:
    run_git(["add", "-A"], cwd=work, env=env)
    run_git(["commit", "--quiet", "-m", message], cwd=work, env=env)
    run_git(["push", "--quiet", "origin", "main"], cwd=work, env=env)
    return git_out(["rev-parse", "HEAD"], work, env).strip()


def test_git_pushed_tag_is_seen_and_pulled_by_lfsreg(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0")
    digest = tags_of(repo)["acme/app:1.0"]

    work = clone(tmp_path, repo, env)
    tag_file = work / layout.NEW.tag_path("acme/app", "from-git")
    tag_file.write_text(f"{digest}\n")
    head = commit_and_push(work, env, "tag acme/app:from-git")
    assert git_out(["rev-parse", "main"], repo, env).strip() == head

    assert tags_of(repo) == {"acme/app:1.0": digest, "acme/app:from-git": digest}
    shown = lfsreg("tags", repo).stdout
    assert "from-git" in shown

    lfsreg("pull", repo, "acme/app:from-git", "-o", f"oci:{tmp_path / 'out.oci'}")
    (pulled,) = verify_oci_layout(tmp_path / "out.oci")
    assert pulled.manifest_digest == digest
    assert pulled.ref == "from-git"
    lfsreg("pull", repo, "acme/app:from-git", "-o", f"docker-archive:{tmp_path / 'out.tar'}")
    (archive,) = read_docker_archive(tmp_path / "out.tar")
    assert archive.repo_tags == ["acme/app:from-git"]
    assert archive.diff_ids == source_image(f"oci:{FIXTURES / 'app.oci'}:1.0").diff_ids


def write_image_with_git(work: Path, archive: Path, name: str, tag: str) -> tuple[str, list[tuple[str, int]]]:
    """Write a docker-archive's image into a checkout as plain files; return (manifest digest, layers).

    Layers go in uncompressed (``application/vnd.oci.image.layer.v1.tar``, digest == diff_id);
    the LFS clean filter turns them into pointers on ``git add``.
    """
    with tarfile.open(archive) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [tar.extractfile(n).read() for n in entry["Layers"]]  # type: ignore[union-attr]
    assert [digest_of(b) for b in layers] == json.loads(config)["rootfs"]["diff_ids"]

    def put(kind: str, data: bytes) -> dict[str, object]:
        hexd = sha256_hex(data)
        path = work / layout.NEW.hex_path(kind, hexd)  # the layout the registry's marker names (version 4: version 3's shards)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"digest": f"sha256:{hexd}", "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **put("blobs", config)},
        "layers": [{"mediaType": OCI_LAYER, **put("layers", data)} for data in layers],
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode() + b"\n"
    digest = str(put("blobs", manifest_bytes)["digest"])
    tag_file = work / layout.NEW.tag_path(name, tag)
    tag_file.parent.mkdir(parents=True, exist_ok=True)
    tag_file.write_text(f"{digest}\n")
    return digest, [(sha256_hex(b), len(b)) for b in layers]


def test_image_written_with_git_lfs_is_pulled_by_lfsreg(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, f"docker-archive:{FIXTURES / 'base.docker.tar'}")  # zstd layer, a diffid record
    before = lfs_object_files(repo)

    work = clone(tmp_path, repo, env)
    digest, layers = write_image_with_git(work, FIXTURES / "app.docker.tar", "gitmade/app", "1.0")
    run_git(["add", "-A"], cwd=work, env=env)
    # the clean filter stored pointers, not the tars
    for oid, size in layers:
        staged = run_git(["cat-file", "-p", f":{layout.NEW.hex_path('layers', oid)}"], cwd=work, env=env).stdout
        assert staged == canonical_pointer(oid, size)
    head = commit_and_push(work, env, "add gitmade/app:1.0 with git")
    assert git_out(["rev-parse", "main"], repo, env).strip() == head

    # git-lfs's pre-push hook put the objects where lfsreg reads them
    store = LocalLfsStore(str(repo))
    assert lfs_object_files(repo) == before | {oid for oid, _ in layers}
    for oid, size in layers:
        path = Path(store.path(LfsObject(oid, size)))
        assert path == repo / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        assert sha256_hex(path.read_bytes()) == oid
        assert not store.missing([LfsObject(oid, size)])

    assert tags_of(repo)["gitmade/app:1.0"] == digest
    assert "gitmade/app" in lfsreg("images", repo).stdout
    source = source_image(f"docker-archive:{FIXTURES / 'app.docker.tar'}")

    lfsreg("pull", repo, "gitmade/app:1.0", "-o", f"docker-archive:{tmp_path / 'out.tar'}")
    (pulled,) = verify_docker_archive(tmp_path / "out.tar")
    assert pulled.diff_ids == source.diff_ids
    assert pulled.config_digest == source.config_digest

    lfsreg("pull", repo, "gitmade/app:1.0", "-o", f"oci:{tmp_path / 'out.oci'}")
    (pulled,) = verify_oci_layout(tmp_path / "out.oci")
    assert pulled.manifest_digest == digest
    assert pulled.layer_digests == source.diff_ids

    lfsreg("pull", repo, "gitmade/app:1.0", "-o", f"oci-archive:{tmp_path / 'out.oci.tar'}")
    (pulled,) = verify_oci_archive(tmp_path / "out.oci.tar")
    assert (pulled.manifest_digest, pulled.layer_digests) == (digest, source.diff_ids)
    assert skopeo_inspect(f"oci-archive:{tmp_path / 'out.oci.tar'}")["Digest"] == digest
    run_git(["fsck", "--strict"], cwd=repo, env=env)


# -- c. lfsreg pushes on top of git's commits; the clone pulls lfsreg's commit ---------------------


def test_lfsreg_pushes_on_top_of_git_and_clone_pulls_it(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, f"docker-archive:{FIXTURES / 'base.docker.tar'}")

    work = clone(tmp_path, repo, env)
    git_digest, layers = write_image_with_git(work, FIXTURES / "app.docker.tar", "gitmade/app", "1.0")
    (work / layout.NEW.tag_path("acme/base", "from-git")).write_text(tags_of(repo)["acme/base:1.0"] + "\n")
    git_head = commit_and_push(work, env, "git commit")

    # lfsreg sees git's tip and commits on top of it (no lost update, no merge)
    result = json.loads(
        lfsreg("push", repo, f"docker-archive:{FIXTURES / 'app.docker.tar'}", "--tag", "acme/app:after-git", "--format", "json").stdout
    )
    new_head = git_out(["rev-parse", "main"], repo, env).strip()
    assert result["commit"] == new_head
    assert git_out(["rev-parse", "main^"], repo, env).strip() == git_head
    assert git_out(["rev-list", "--count", "main"], repo, env).strip() == "3"
    # git's uncompressed layers are reused (found by digest == diff_id), nothing uploaded again
    assert result["layers_uploaded"] == 0
    assert result["layers_reused"] == len(layers)
    lfsreg_digest = result["images"][0]["digest"]
    hexd = lfsreg_digest.removeprefix("sha256:")
    manifest = json.loads(git_out(["show", f"main:{layout.NEW.hex_path('blobs', hexd)}"], repo, env))
    expected = []
    for oid, size in layers:
        # L1 has lfsreg's diffid record from the base push (its zstd blob); L2/L3 are git's plain tars
        record = run_git(["show", f"main:{layout.NEW.hex_path('diffids', oid)}"], cwd=repo, env=env, check=False)
        if record.returncode == 0:
            stored = json.loads(record.stdout)
            expected.append((stored["mediaType"], stored["digest"], stored["size"]))
        else:
            expected.append((OCI_LAYER, f"sha256:{oid}", size))
    assert [e[0] for e in expected].count(OCI_LAYER) == 2
    assert [(x["mediaType"], x["digest"], x["size"]) for x in manifest["layers"]] == expected

    tags = tags_of(repo)
    assert tags["gitmade/app:1.0"] == git_digest
    assert tags["acme/app:after-git"] == lfsreg_digest
    assert tags["acme/base:from-git"] == tags["acme/base:1.0"]

    # another lfsreg push with a new layer, then the clone fast-forwards cleanly
    lfsreg("push", repo, f"oci:{FIXTURES / 'tool.oci'}:2.0", "--tag", "acme/tool:2.0")
    run_git(["pull", "--quiet", "--ff-only"], cwd=work, env=env)
    assert git_out(["rev-parse", "HEAD"], work, env) == git_out(["rev-parse", "main"], repo, env)
    assert (work / layout.NEW.tag_path("acme/tool", "2.0")).is_file()
    check_checkout(repo, work, env)

    lfsreg("pull", repo, "acme/tool:2.0", "-o", f"oci:{tmp_path / 'tool.oci'}")
    (pulled,) = verify_oci_layout(tmp_path / "tool.oci")
    assert pulled.diff_ids == source_image(f"oci:{FIXTURES / 'tool.oci'}:2.0").diff_ids
    run_git(["fsck", "--strict"], cwd=repo, env=env)


def test_lfsreg_after_stock_git_gc_and_pack_refs(tmp_path: Path) -> None:
    """``git gc`` packs lfsreg's loose objects and ``main`` into packed-refs; lfsreg still reads and swaps."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1.0")
    run_git(["gc", "--quiet", "--prune=now"], cwd=repo, env=env)
    run_git(["pack-refs", "--all"], cwd=repo, env=env)
    assert not (repo / "refs" / "heads" / "main").exists()
    packed_head = git_out(["rev-parse", "main"], repo, env).strip()
    assert packed_head in (repo / "packed-refs").read_text()

    assert list(tags_of(repo)) == ["acme/app:1.0"]
    lfsreg("push", repo, f"oci:{FIXTURES / 'tool.oci'}:2.0", "--tag", "acme/tool:2.0")
    assert git_out(["rev-parse", "main^"], repo, env).strip() == packed_head
    assert list(tags_of(repo)) == ["acme/app:1.0", "acme/tool:2.0"]
    lfsreg("pull", repo, "acme/app:1.0", "acme/tool:2.0", "-o", f"oci:{tmp_path / 'out.oci'}")
    assert len(verify_oci_layout(tmp_path / "out.oci")) == 2
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=env)
    check_checkout(repo, clone(tmp_path, repo, env), env)
