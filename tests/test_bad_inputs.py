"""Bad inputs, each through the CLI: a one-line error, the right exit code, nothing changed or left behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import tarfile

import pytest
from conftest import (
    Layout,
    assert_error,
    assert_ok,
    check_docker_archive_output,
    lfs_objects,
    read_docker_archive,
    run_cli,
    sample,
    snapshot,
    tree_files,
)
from gitenv import isolated_git_env, run_git

import lfsreg

# A layer the registry already stores (verified when it was stored) is reused without reading
# the source again (docs/format.md, "Reuse"): a corrupt copy of such a layer is not re-read, so
# these cases are rejected only when the registry lacks the layer; see
# test_corrupt_copy_of_a_stored_layer_is_not_read below for the populated case.
REUSE_SKIPS_VERIFY = "reused without reading"


def _env(tmp_path):
    """An environment whose TMPDIR is an empty directory we can inspect afterwards."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp)}, tmp


def _assert_clean(repo, before, tmpdir=None):
    assert snapshot(repo) == before, "the registry changed"
    staging = repo / "lfs" / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == [], "files left in lfs/tmp"
    if tmpdir is not None:
        assert list(tmpdir.iterdir()) == [], "temporary files left in TMPDIR"


# -- inputs made at test time ----------------------------------------------------------------------
def _random_tar(tmp_path):
    path = tmp_path / "random.tar"
    data = random.Random(1).randbytes(20000)
    assert data[:2] != b"\x1f\x8b" and data[:4] != b"\x28\xb5\x2f\xfd"
    path.write_bytes(data)
    return path


def _random_gz(tmp_path):
    path = tmp_path / "random.tar.gz"
    path.write_bytes(gzip.compress(random.Random(2).randbytes(20000), mtime=0))
    return path


def _truncated(tmp_path):
    data = sample("fixtures", "app.docker.tar").read_bytes()
    path = tmp_path / "cut.docker.tar"
    path.write_bytes(data[: len(data) // 2 + 100])
    return path


def _truncated_gz(tmp_path):
    path = tmp_path / "truncated.docker.tar.gz"
    path.write_bytes(gzip.compress(sample("fixtures", "bad/truncated.docker.tar").read_bytes(), mtime=0))
    return path


def _cut_gzip(tmp_path):
    data = sample("fixtures", "app.docker.tar.gz").read_bytes()
    path = tmp_path / "cut.docker.tar.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _tar_with(tmp_path, name, member):
    """app.docker.tar plus one extra member named ``member``."""
    path = tmp_path / name
    with tarfile.open(sample("fixtures", "app.docker.tar")) as src, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as dst:
        for info in src.getmembers():
            dst.addfile(info, src.extractfile(info) if info.isfile() else None)
        info = tarfile.TarInfo(member)
        info.size = 4
        dst.addfile(info, io.BytesIO(b"evil"))
    return path


def _oci_missing_blob(tmp_path):
    """A copy of app.oci without its config blob."""
    dest = tmp_path / "nocfg.oci"
    shutil.copytree(sample("fixtures", "app.oci"), dest)
    (dest / "blobs" / "sha256" / "6aa11d3a13057d40aeac6aa88533759c8d279078513b16c015edaf9fc18d3732").unlink()
    return dest


def _rewritten_app(tmp_path, name, edit=None, extra=()):
    """app.docker.tar with ``manifest.json`` passed through ``edit`` and ``extra`` members appended."""
    path = tmp_path / name
    with tarfile.open(sample("fixtures", "app.docker.tar")) as src, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as dst:
        for info in src.getmembers():
            if info.name == "manifest.json" and edit is not None:
                data = json.dumps(edit(json.loads(src.extractfile(info).read()))).encode()
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
            else:
                dst.addfile(info, src.extractfile(info) if info.isfile() else None)
        for member in extra:
            dst.addfile(member)
    return path


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _drop_layer(doc):
    doc[0]["Layers"] = doc[0]["Layers"][:-1]
    return doc


def _config_via_link(doc):
    doc[0]["Config"] = "config-link"
    return doc


def _edited_layout(tmp_path, name, field, value):
    """A copy of app.oci whose index.json entry has ``field`` set to ``value(old)``."""
    dest = tmp_path / name
    shutil.copytree(sample("fixtures", "app.oci"), dest)
    doc = json.loads((dest / "index.json").read_text())
    doc["manifests"][0][field] = value(doc["manifests"][0][field])
    (dest / "index.json").write_text(json.dumps(doc))
    return dest


def _app_diff_id(i):
    (entry,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    return entry.diff_ids[i]


def _app_oci_layer(i):
    layout = Layout(sample("fixtures", "app.oci"))
    (image,) = layout.flatten(layout.entry("1.0")["digest"])
    return image.layers[i][0]["digest"]


# (id, transport, path maker, needles maker, marks when the registry already holds the app image)
BAD_SOURCES = [
    ("random-bytes", "docker-archive", _random_tar, lambda p: [p.name], None),
    ("random-bytes-oci-archive", "oci-archive", _random_tar, lambda p: [p.name], None),
    ("random-gzip", "docker-archive", _random_gz, lambda p: [p.name], None),
    ("truncated-fixture", "docker-archive", lambda t: sample("fixtures", "bad/truncated.docker.tar"), lambda p: [p.name], None),
    ("truncated-half", "docker-archive", _truncated, lambda p: [p.name], None),
    ("truncated-inside-gzip", "docker-archive", _truncated_gz, lambda p: [p.name], None),
    ("cut-gzip-stream", "docker-archive", _cut_gzip, lambda p: [p.name], None),
    (
        "dotdot-member",
        "docker-archive",
        lambda t: sample("fixtures", "bad/path-traversal.docker.tar"),
        lambda p: [p.name, "../evil"],
        None,
    ),
    ("dotdot-extra-member", "docker-archive", lambda t: _tar_with(t, "extra.tar", "a/../../b"), lambda p: [p.name, "a/../../b"], None),
    (
        "absolute-member",
        "docker-archive",
        lambda t: sample("fixtures", "bad/absolute-path.docker.tar"),
        lambda p: [p.name, "/etc/evil"],
        None,
    ),
    ("absolute-extra-member", "docker-archive", lambda t: _tar_with(t, "abs.tar", "/tmp/x"), lambda p: [p.name, "/tmp/x"], None),
    (
        "digest-mismatch",
        "docker-archive",
        lambda t: sample("fixtures", "bad/digest-mismatch.docker.tar"),
        lambda p: [p.name, _app_diff_id(1)],
        REUSE_SKIPS_VERIFY,
    ),
    (
        "blob-mismatch-oci",
        "oci",
        lambda t: sample("fixtures", "bad/blob-mismatch.oci"),
        lambda p: [p.name, _app_oci_layer(1)],
        REUSE_SKIPS_VERIFY,
    ),
    ("missing-layer", "docker-archive", lambda t: sample("fixtures", "bad/missing-layer.docker.tar"), lambda p: [p.name], None),
    (
        "missing-oci-blob",
        "oci",
        _oci_missing_blob,
        lambda p: [p.name, "6aa11d3a13057d40aeac6aa88533759c8d279078513b16c015edaf9fc18d3732"],
        None,
    ),
    (
        "no-manifest-fixture",
        "docker-archive",
        lambda t: sample("fixtures", "bad/no-manifest.docker.tar"),
        lambda p: [p.name, "manifest.json"],
        None,
    ),
    (
        "ggcr-no_manifest",
        "docker-archive",
        lambda t: sample("formats", "ggcr-no_manifest.tar"),
        lambda p: [p.name, "manifest.json"],
        None,
    ),
    (
        "ggcr-null_manifest",
        "docker-archive",
        lambda t: sample("formats", "ggcr-null_manifest.tar"),
        lambda p: [p.name, "manifest.json"],
        None,
    ),
    (
        "symlink-out-of-archive",
        "docker-archive",
        lambda t: _rewritten_app(t, "symlink.tar", extra=[_symlink("evil-link", "../../etc/passwd")]),
        lambda p: [p.name, "../../etc/passwd"],
        None,
    ),
    (
        "config-via-absolute-link",
        "docker-archive",
        lambda t: _rewritten_app(t, "cfglink.tar", _config_via_link, [_symlink("config-link", "/etc/passwd")]),
        lambda p: [p.name, "/etc/passwd"],
        None,
    ),
    ("layer-count-mismatch", "docker-archive", lambda t: _rewritten_app(t, "count.tar", _drop_layer), lambda p: [p.name], None),
    (
        "index-digest-traversal",
        "oci",
        lambda t: _edited_layout(t, "baddigest.oci", "digest", lambda d: "sha256:../../../../etc/passwd"),
        lambda p: [p.name, "index.json"],
        None,
    ),
    (
        "index-size-mismatch",
        "oci",
        lambda t: _edited_layout(t, "badsize.oci", "size", lambda n: n + 10),
        lambda p: [p.name, "49a8c9a5176f396834f02e40e62f5d61035a09baa06cdbb21fa4466fc2e00588"],
        None,
    ),
    ("no-such-file", "docker-archive", lambda t: t / "nosuch.tar", lambda p: [p.name], None),
    ("empty-dir-as-oci", "oci", lambda t: (t / "empty").mkdir() or t / "empty", lambda p: [p.name], None),
]


# Failures that can happen after some layers were already staged; the rest fail while parsing and
# run against the populated registry only.
LATE_FAILURES = {"digest-mismatch", "blob-mismatch-oci", "missing-layer", "missing-oci-blob", "cut-gzip-stream", "random-gzip"}


def _params(populated_state):
    out = []
    for ident, transport, make, needles, bug in BAD_SOURCES:
        if not populated_state and ident not in LATE_FAILURES:
            continue
        if bug == REUSE_SKIPS_VERIFY and populated_state:
            continue
        out.append(pytest.param(transport, make, needles, id=ident))
    return out


def _push_bad(tmp_path, repo, transport, make, needles):
    src = make(tmp_path)
    env, tmpdir = _env(tmp_path)
    before = snapshot(repo)
    proc = run_cli("push", repo, f"{transport}:{src}", "--tag", "bad/input:1", env=env)
    assert_error(proc, 1, *needles(src))
    _assert_clean(repo, before, tmpdir)


@pytest.mark.parametrize(("transport", "make", "needles"), _params(populated_state=False))
def test_bad_source_into_fresh_registry(tmp_path, registry, transport, make, needles):
    _push_bad(tmp_path, registry, transport, make, needles)


@pytest.mark.parametrize(("transport", "make", "needles"), _params(populated_state=True))
def test_bad_source_into_populated_registry(tmp_path, populated, transport, make, needles):
    _push_bad(tmp_path, populated, transport, make, needles)


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        (f"docker-archive:{sample('fixtures', 'bad/digest-mismatch.docker.tar')}", "bad/input:1"),
        (f"oci:{sample('fixtures', 'bad/blob-mismatch.oci')}:1.0", "bad/input:2"),
    ],
)
def test_corrupt_copy_of_a_stored_layer_is_not_read(tmp_path, populated, source, tag):
    """The registry already holds every layer (by digest or diff_id): nothing is read or stored,
    and the new tag names an image whose every byte was verified when it was first stored."""
    objects = sorted(p.name for p in (populated / "lfs" / "objects").rglob("*") if p.is_file())
    proc = run_cli("push", populated, source, "--tag", tag)
    assert proc.returncode == 0, proc.stderr
    assert "0 layer(s) stored" in proc.stdout
    assert sorted(p.name for p in (populated / "lfs" / "objects").rglob("*") if p.is_file()) == objects
    out = tmp_path / "pulled.tar"
    assert run_cli("pull", populated, tag, "-o", f"docker-archive:{out}").returncode == 0
    (entry,) = check_docker_archive_output(out)
    assert entry.repo_tags == [tag]
    assert entry.diff_ids == [sha256_of(layer) for layer in entry.layers]  # the stored, verified content


def test_bad_source_among_good_ones_pushes_nothing(tmp_path, populated):
    """One bad source in a multi-source push: no tag from the good sources, no new objects."""
    before = snapshot(populated)
    proc = run_cli(
        "push",
        populated,
        f"docker-archive:{sample('fixtures', 'tool.docker.tar')}",
        f"docker-archive:{sample('fixtures', 'bad/path-traversal.docker.tar')}",
    )
    assert_error(proc, 1, "path-traversal.docker.tar")
    _assert_clean(populated, before)


# -- pulls ----------------------------------------------------------------------------------------
PULL_OUTPUTS = [
    pytest.param(lambda d: f"docker-archive:{d / 'out.tar'}", id="docker-archive"),
    pytest.param(lambda d: f"oci:{d / 'layout'}", id="oci"),
    pytest.param(lambda d: f"oci:{d / 'layout'}:ref", id="oci-ref"),
    pytest.param(lambda d: f"oci-archive:{d / 'out.oci.tar'}:ref", id="oci-archive"),
]


def _pull_bad(tmp_path, repo, image, dest, code, *needles):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    before = snapshot(repo)
    proc = run_cli("pull", repo, image, "-o", dest(out))
    assert_error(proc, code, *needles)
    assert list(out.iterdir()) == [], "the failed pull left output behind"
    _assert_clean(repo, before)


@pytest.mark.parametrize("dest", PULL_OUTPUTS[::3])
@pytest.mark.parametrize(
    ("image", "needle"),
    [
        ("acme/app:nope", "acme/app:nope"),
        ("nosuch/img:1", "nosuch/img:1"),
        ("acme/app@sha256:" + "0" * 64, "sha256:" + "0" * 64),
    ],
)
def test_pull_unknown_image(tmp_path, populated, dest, image, needle):
    _pull_bad(tmp_path, populated, image, dest, 1, needle)


def _delete_one_lfs_object(repo):
    objects = lfs_objects(repo)
    assert objects
    victim = max(objects, key=lambda p: p.stat().st_size)
    victim.unlink()
    return victim.name


def _corrupt_one_lfs_object(repo):
    objects = lfs_objects(repo)
    victim = max(objects, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))
    return victim.name


@pytest.mark.parametrize("dest", PULL_OUTPUTS)
def test_pull_missing_lfs_object(tmp_path, populated, dest):
    oid = _delete_one_lfs_object(populated)
    _pull_bad(tmp_path, populated, "acme/app:1.0", dest, 1, oid)


@pytest.mark.parametrize("dest", PULL_OUTPUTS)
@pytest.mark.parametrize("stored", ["gzip", "zstd", "none"])
def test_pull_corrupt_lfs_object(tmp_path, registry, dest, stored):
    """A layer whose LFS object changed (same size): the error names the layer, nothing is written."""
    reg = lfsreg.Registry(str(registry))
    if stored == "gzip":
        reg.push([f"oci:{sample('fixtures', 'app.oci')}:1.0"], tags=["acme/app:1.0"])
    else:
        reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], compression=stored)
    oid = _corrupt_one_lfs_object(registry)
    # the layer may be named by its stored digest or by its diff_id
    records = {json.loads(c)["digest"]: "sha256:" + p.rsplit("/", 1)[1] for p, c in tree_files(registry, "diffids/").items()}
    names = (oid, records.get(f"sha256:{oid}", oid))
    _pull_bad(tmp_path, registry, "acme/app:1.0", dest, 1, names)


def test_push_again_repairs_missing_lfs_object(tmp_path, populated):
    oid = _delete_one_lfs_object(populated)
    result = lfsreg.Registry(str(populated)).push([f"oci:{sample('fixtures', 'app.oci')}:1.0"], tags=["acme/app:1.0"])
    assert result.layers_uploaded == 1
    assert oid in {p.name for p in lfs_objects(populated)}
    assert_ok(run_cli("pull", populated, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'ok.tar'}"))
    (entry,) = check_docker_archive_output(tmp_path / "ok.tar")  # the repaired layer is read back whole
    (source,) = read_docker_archive(sample("fixtures", "app.docker.tar"))
    assert entry.diff_ids == source.diff_ids


def test_failed_pull_keeps_existing_output(tmp_path, populated):
    out = tmp_path / "out.tar"
    out.write_bytes(b"previous content")
    _delete_one_lfs_object(populated)
    proc = run_cli("pull", populated, "acme/app:1.0", "-o", f"docker-archive:{out}")
    assert_error(proc, 1)
    assert out.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("kind", ["docker-archive", "oci", "oci-archive"])
def test_failed_pull_leaves_no_new_parent_directories(tmp_path, populated, kind):
    _delete_one_lfs_object(populated)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("pull", populated, "acme/app:1.0", "-o", f"{kind}:{out / 'new' / 'sub' / 'img'}")
    assert_error(proc, 1)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("kind", ["docker-archive", "oci-archive"])
def test_pull_archive_onto_a_directory(tmp_path, populated, kind):
    out = tmp_path / "out"
    target = out / "isdir"
    target.mkdir(parents=True)
    proc = run_cli("pull", populated, "acme/app:1.0", "-o", f"{kind}:{target}")
    line = assert_error(proc, 2, "isdir")
    assert ".lfsreg-" not in line
    assert [p.name for p in out.iterdir()] == ["isdir"] and list(target.iterdir()) == []


def test_pull_archive_onto_a_directory_leaves_nothing(tmp_path, populated):
    out = tmp_path / "out"
    target = out / "isdir"
    target.mkdir(parents=True)
    proc = run_cli("pull", populated, "acme/app:1.0", "-o", f"docker-archive:{target}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [p.name for p in out.iterdir()] == ["isdir"] and list(target.iterdir()) == []


def test_pull_layout_onto_a_file(tmp_path, populated):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "afile"
    target.write_bytes(b"keep me")
    proc = run_cli("pull", populated, "acme/app:1.0", "-o", f"oci:{target}")
    assert_error(proc, 1, "afile", "not a directory")
    assert [p.name for p in out.iterdir()] == ["afile"] and target.read_bytes() == b"keep me"


# -- repositories that are not registries --------------------------------------------------------------
COMMANDS_ON_REPO = [
    pytest.param(lambda r, t: ["images", r], id="images"),
    pytest.param(lambda r, t: ["tags", r], id="tags"),
    pytest.param(lambda r, t: ["inspect", r, "acme/app:1.0"], id="inspect"),
    pytest.param(lambda r, t: ["rm", r, "acme/app:1.0"], id="rm"),
    pytest.param(lambda r, t: ["init", r], id="init"),
    pytest.param(lambda r, t: ["push", r, f"docker-archive:{sample('fixtures', 'app.docker.tar')}"], id="push"),
    pytest.param(lambda r, t: ["pull", r, "acme/app:1.0", "-o", f"docker-archive:{t / 'out.tar'}"], id="pull"),
]


@pytest.fixture
def foreign_repo(tmp_path):
    """A bare repository made by stock git whose main branch has a commit without lfsreg.json."""
    env = isolated_git_env(tmp_path, lfs=False)
    repo = tmp_path / "foreign.git"
    run_git(["init", "--bare", "-b", "main", str(repo)], cwd=tmp_path, env=env)
    blob = run_git(["hash-object", "-w", "--stdin"], cwd=repo, env=env, input_bytes=b"hello\n").stdout.decode().strip()
    tree = run_git(["mktree"], cwd=repo, env=env, input_bytes=f"100644 blob {blob}\tREADME\n".encode()).stdout.decode().strip()
    commit = run_git(["commit-tree", tree, "-m", "not a registry"], cwd=repo, env=env).stdout.decode().strip()
    run_git(["update-ref", "refs/heads/main", commit], cwd=repo, env=env)
    return repo


@pytest.mark.parametrize("command", COMMANDS_ON_REPO)
def test_not_a_registry(tmp_path, foreign_repo, command):
    before = snapshot(foreign_repo)
    assert before[0] is not None
    proc = run_cli(*command(foreign_repo, tmp_path))
    assert_error(proc, 1, str(foreign_repo), "lfsreg")
    assert snapshot(foreign_repo) == before
    assert not (tmp_path / "out.tar").exists()


@pytest.mark.parametrize("command", [COMMANDS_ON_REPO[0], *COMMANDS_ON_REPO[-2:]])
def test_not_a_git_repository(tmp_path, command):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("not git\n")
    before = snapshot(plain)
    proc = run_cli(*command(plain, tmp_path))
    assert_error(proc, 1, str(plain))
    assert snapshot(plain) == before


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda r, t: ["images", r], id="images"),
        pytest.param(lambda r, t: ["pull", r, "acme/app:1.0", "-o", f"docker-archive:{t / 'out.tar'}"], id="pull"),
    ],
)
def test_no_such_registry(tmp_path, command):
    missing = tmp_path / "missing.git"
    proc = run_cli(*command(missing, tmp_path))
    assert_error(proc, 1, str(missing))
    assert not missing.exists()


# -- bad names and tags -----------------------------------------------------------------------------------
BAD_REFS = [("UPPER:1", "UPPER"), ("a/../b:1", "a/../b"), ("x:-bad", "-bad")]
MORE_BAD_REFS = [("a//b:1", "a//b"), ("x:" + "t" * 129, "t" * 129), ("/abs:1", "/abs"), ("a/b/:1", "a/b/"), ("x:a/b", "x:a/b")]
REF_COMMANDS = [
    pytest.param(lambda r, ref, t: ["push", r, f"docker-archive:{sample('fixtures', 'app.docker.tar')}", "--tag", ref], id="push-tag"),
    pytest.param(lambda r, ref, t: ["push", r, f"docker-archive:{sample('fixtures', 'app.docker.tar')}:{ref}"], id="push-selector"),
    pytest.param(lambda r, ref, t: ["pull", r, ref, "-o", f"docker-archive:{t / 'out.tar'}"], id="pull"),
    pytest.param(lambda r, ref, t: ["rm", r, ref], id="rm"),
    pytest.param(lambda r, ref, t: ["inspect", r, ref], id="inspect"),
]


@pytest.mark.parametrize("command", REF_COMMANDS)
@pytest.mark.parametrize(("ref", "needle"), BAD_REFS, ids=[r[1][:12] for r in BAD_REFS])
def test_bad_image_reference(tmp_path, populated, command, ref, needle):
    before = snapshot(populated)
    proc = run_cli(*command(populated, ref, tmp_path))
    assert_error(proc, 2, needle)
    assert snapshot(populated) == before
    assert not (tmp_path / "out.tar").exists()


@pytest.mark.parametrize(("ref", "needle"), MORE_BAD_REFS, ids=[r[1][:12] for r in MORE_BAD_REFS])
def test_more_bad_references(tmp_path, populated, ref, needle):
    before = snapshot(populated)
    proc = run_cli("push", populated, f"docker-archive:{sample('fixtures', 'base.docker.tar')}", "--tag", ref)
    assert_error(proc, 2, needle)
    assert snapshot(populated) == before


@pytest.mark.parametrize(("ref", "needle"), [("UPPER", "UPPER"), ("a/../b", "a/../b")])
def test_bad_name_in_tags_listing(populated, ref, needle):
    proc = run_cli("tags", populated, ref)
    assert_error(proc, 2, needle)


def test_bad_repo_tags_in_archive(tmp_path, registry):
    """An archive whose RepoTags holds an invalid name is refused, naming it."""
    path = tmp_path / "badname.tar"
    with tarfile.open(sample("fixtures", "app.docker.tar")) as src, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as dst:
        for info in src.getmembers():
            if info.name == "manifest.json":
                doc = json.loads(src.extractfile(info).read())
                doc[0]["RepoTags"] = ["Evil/../Name:1"]
                data = json.dumps(doc).encode()
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
            else:
                dst.addfile(info, src.extractfile(info) if info.isfile() else None)
    before = snapshot(registry)
    proc = run_cli("push", registry, f"docker-archive:{path}")
    assert_error(proc, 2, "Evil/../Name")
    _assert_clean(registry, before)
