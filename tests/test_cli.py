"""The ``lfsreg`` command line (in-process; -v and --version as subprocesses): listings, JSON output, rm, usage errors, -v."""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest
from conftest import (
    Layout,
    assert_error,
    assert_ok,
    check_docker_archive_output,
    commit_count,
    describe,
    read_docker_archive,
    run_cli,
    sample,
    sha256,
    snapshot,
    verify_layout,
)

import lfsreg

# name:tag -> (transport, fixture, extra push args)
PUSHES = [
    ("docker-archive", "app-tags.docker.tar", []),
    ("docker-archive", "tool.docker.tar", []),
    ("docker-archive", "base.docker.tar", []),
    ("oci", "multi.oci:1.0", ["--tag", "acme/multi:1.0"]),
]


def _source_configs():
    """(name, tag) -> config bytes of every single-platform image the listing registry holds."""
    out = {}
    for _, name, _ in PUSHES:
        if name.endswith(".tar"):
            for entry in read_docker_archive(sample("fixtures", name)):
                for t in entry.repo_tags:
                    ref = t.removeprefix("docker.io/")
                    out[tuple(ref.rsplit(":", 1))] = entry.config
    return out


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """A registry with acme/app:{1.0,latest}, acme/tool:2.0, acme/base:1.0 and acme/multi:1.0, pushed via the CLI."""
    repo = tmp_path_factory.mktemp("cli") / "reg.git"
    assert_ok(run_cli("init", repo))
    digests = {}
    for transport, name, extra in PUSHES:
        proc = run_cli("push", repo, f"{transport}:{sample('fixtures', '')}/{name}", *extra, "--format", "json")
        assert_ok(proc)
        doc = json.loads(proc.stdout)
        assert re.fullmatch(r"[0-9a-f]{40}", doc["commit"])
        assert doc["layers_uploaded"] + doc["layers_reused"] >= 1
        assert (doc["bytes_uploaded"] > 0) == (doc["layers_uploaded"] > 0)
        for image in doc["images"]:
            digests[(image["name"], image["tag"])] = image["digest"]
    return repo, digests


def test_version():
    proc = run_cli("--version", spawn=True)
    assert_ok(proc)
    assert lfsreg.__version__ in proc.stdout
    assert importlib.metadata.version("lfsreg") == lfsreg.__version__
    assert proc.stdout.strip().startswith("lfsreg")


def test_help_lists_commands():
    proc = run_cli("--help")
    assert_ok(proc)
    for command in ("init", "push", "pull", "images", "tags", "inspect", "rm"):
        assert re.search(rf"^\s+{command}\b", proc.stdout, re.M), command


def test_init_creates_a_bare_registry(tmp_path):
    repo = tmp_path / "new.git"
    proc = run_cli("init", repo)
    assert_ok(proc)
    assert str(repo) in proc.stdout
    assert snapshot(repo)[0] is not None
    assert (repo / "HEAD").read_text().strip() == "ref: refs/heads/main"
    assert not (repo / ".git").exists()
    before = snapshot(repo)
    assert_error(run_cli("init", repo), (1, 2), str(repo))
    assert snapshot(repo) == before


def test_push_json_output(listing):
    _, digests = listing
    assert set(digests) == {("acme/app", "1.0"), ("acme/app", "latest"), ("acme/tool", "2.0"), ("acme/base", "1.0"), ("acme/multi", "1.0")}
    assert digests[("acme/app", "1.0")] == digests[("acme/app", "latest")]
    src = Layout(sample("fixtures", "multi.oci"))
    assert digests[("acme/multi", "1.0")] == src.entry("1.0")["digest"]


def test_push_text_output(tmp_path):
    repo = tmp_path / "reg.git"
    proc = run_cli("push", repo, f"docker-archive:{sample('fixtures', 'base.docker.tar')}")
    assert_ok(proc)
    digest = lfsreg.Registry(str(repo)).tags("acme/base")[0].digest
    assert f"acme/base:1.0: {digest}" in proc.stdout
    again = run_cli("push", repo, f"docker-archive:{sample('fixtures', 'base.docker.tar')}")
    assert_ok(again)
    assert "unchanged" in again.stdout


def test_images_table(listing):
    repo, digests = listing
    proc = run_cli("images", repo)
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert sorted((r[0], r[1]) for r in rows) == sorted(digests)
    configs = _source_configs()
    for row in rows:
        key = (row[0], row[1])
        if key in configs:
            assert row[2] == sha256(configs[key]).split(":")[1][:12]
            assert row[3].startswith(json.loads(configs[key])["created"][:10])
        assert re.fullmatch(r"[0-9.]+(B|kB|MB|GB)", row[4]), row


def test_images_json(tmp_path, listing):
    repo, digests = listing
    proc = run_cli("images", repo, "--format", "json")
    assert_ok(proc)
    rows = json.loads(proc.stdout)
    assert sorted((r["name"], r["tag"]) for r in rows) == sorted(digests)
    configs = _source_configs()
    for row in rows:
        key = (row["name"], row["tag"])
        assert row["digest"] == digests[key]
        assert set(row) >= {"name", "tag", "digest", "image_id", "created", "size", "platforms"}
        if key in configs:
            config = json.loads(configs[key])
            assert row["image_id"] == sha256(configs[key])
            assert row["created"] == config["created"]
            assert row["platforms"] == [f"{config['os']}/{config['architecture']}"]
            # sizes are of the stored blobs: config and layers, plus at most the manifest
            dest = tmp_path / f"{row['name'].replace('/', '_')}-{row['tag']}"
            lfsreg.Registry(str(repo)).pull([f"{row['name']}:{row['tag']}"], f"oci:{dest}")
            layout = verify_layout(dest)
            (image,) = layout.flatten(row["digest"])
            blobs = len(image.config) + sum(len(b) for _, b in image.layers)
            assert blobs <= row["size"] <= blobs + len(layout.blob(row["digest"]))
    multi = next(r for r in rows if r["name"] == "acme/multi")
    assert sorted(multi["platforms"]) == ["linux/amd64", "linux/arm64"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--image", "acme/app"], {("acme/app", "1.0"), ("acme/app", "latest")}),
        (["--image", "acme/t*"], {("acme/tool", "2.0")}),
        (["--tag", "1.*"], {("acme/app", "1.0"), ("acme/base", "1.0"), ("acme/multi", "1.0")}),
        (["--image", "acme/*", "--tag", "latest"], {("acme/app", "latest")}),
        (["--image", "acme/base", "--image", "acme/tool"], {("acme/base", "1.0"), ("acme/tool", "2.0")}),
        (["--image", "nothing*"], set()),
    ],
)
def test_images_filters(listing, args, expected):
    repo, _ = listing
    proc = run_cli("images", repo, *args, "--format", "json")
    assert_ok(proc)
    assert {(r["name"], r["tag"]) for r in json.loads(proc.stdout)} == expected
    table = run_cli("images", repo, *args)
    assert_ok(table)
    assert len(table.stdout.splitlines()) == 1 + len(expected)


def test_tags(listing):
    repo, digests = listing
    proc = run_cli("tags", repo)
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST"]
    assert sorted(tuple(line.split()) for line in lines[1:]) == sorted((n, t, d) for (n, t), d in digests.items())

    proc = run_cli("tags", repo, "acme/app", "--format", "json")
    assert_ok(proc)
    rows = json.loads(proc.stdout)
    assert rows == sorted(rows, key=lambda r: r["tag"])
    assert {(r["name"], r["tag"], r["digest"]) for r in rows} == {("acme/app", t, digests[("acme/app", t)]) for t in ("1.0", "latest")}

    proc = run_cli("tags", repo, "acme/app", "--tag", "l*", "--format", "json")
    assert_ok(proc)
    assert [(r["name"], r["tag"]) for r in json.loads(proc.stdout)] == [("acme/app", "latest")]

    proc = run_cli("tags", repo, "--tag", "2.*", "--format", "json")
    assert_ok(proc)
    assert [(r["name"], r["tag"]) for r in json.loads(proc.stdout)] == [("acme/tool", "2.0")]


def test_tags_of_unknown_name(listing):
    repo, _ = listing
    assert_error(run_cli("tags", repo, "nosuch/image"), 1, "nosuch/image")


def test_inspect_json(listing):
    repo, digests = listing
    proc = run_cli("inspect", repo, "acme/app:1.0", "--format", "json")
    assert_ok(proc)
    info = json.loads(proc.stdout)
    config_bytes = _source_configs()[("acme/app", "1.0")]
    config = json.loads(config_bytes)
    assert info["name"] == "acme/app" and info["tag"] == "1.0"
    assert info["digest"] == digests[("acme/app", "1.0")]
    assert info["imageID"] == sha256(config_bytes)
    assert info["platforms"] == [f"{config['os']}/{config['architecture']}"]
    assert info["created"] == config["created"]
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "Labels"):
        assert info["config"][key] == config["config"][key], key
    assert [layer["diffID"] for layer in info["layers"]] == config["rootfs"]["diff_ids"]
    for layer in info["layers"]:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", layer["digest"])
        assert layer["size"] > 0

    text = run_cli("inspect", repo, "acme/app:1.0")
    assert_ok(text)
    assert digests[("acme/app", "1.0")] in text.stdout


def test_inspect_index(listing):
    repo, digests = listing
    proc = run_cli("inspect", repo, "acme/multi:1.0", "--format", "json")
    assert_ok(proc)
    info = json.loads(proc.stdout)
    src = Layout(sample("fixtures", "multi.oci"))
    digest = src.entry("1.0")["digest"]
    assert info["digest"] == digest == digests[("acme/multi", "1.0")]
    assert info["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(info["platforms"]) == ["linux/amd64", "linux/arm64"]
    children = {c["digest"] for c in src.json_blob(digest)["manifests"]}
    assert {i["manifest"] for i in info["images"]} == children
    by_digest = {i.manifest_digest: i for i in src.flatten(digest)}
    for image in info["images"]:
        assert image["imageID"] == sha256(by_digest[image["manifest"]].config)


def test_inspect_by_digest(listing):
    repo, digests = listing
    digest = digests[("acme/tool", "2.0")]
    proc = run_cli("inspect", repo, f"acme/tool@{digest}", "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["digest"] == digest


def test_pull_by_digest(tmp_path, listing):
    repo, digests = listing
    digest = digests[("acme/tool", "2.0")]
    assert_ok(run_cli("pull", repo, f"acme/tool@{digest}", "-o", f"oci:{tmp_path / 'l'}:x"))
    assert verify_layout(tmp_path / "l").entry("x")["digest"] == digest


def test_inspect_unknown(listing):
    repo, _ = listing
    assert_error(run_cli("inspect", repo, "acme/app:2.0"), 1, "acme/app:2.0")


def test_rm_then_pull_fails(tmp_path):
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("push", repo, f"docker-archive:{sample('fixtures', 'app-tags.docker.tar')}"))
    assert_ok(run_cli("push", repo, f"docker-archive:{sample('fixtures', 'tool.docker.tar')}"))
    proc = run_cli("rm", repo, "acme/app:1.0")
    assert_ok(proc)
    assert "acme/app:1.0" in proc.stdout
    out = tmp_path / "out"
    out.mkdir()
    assert_error(run_cli("pull", repo, "acme/app:1.0", "-o", f"docker-archive:{out / 'a.tar'}"), 1, "acme/app:1.0")
    assert list(out.iterdir()) == []
    tags = json.loads(run_cli("tags", repo, "--format", "json").stdout)
    assert {(r["name"], r["tag"]) for r in tags} == {("acme/app", "latest"), ("acme/tool", "2.0")}
    # the other tag of the same image still pulls
    assert_ok(run_cli("pull", repo, "acme/app:latest", "-o", f"docker-archive:{tmp_path / 'b.tar'}"))
    (entry,) = check_docker_archive_output(tmp_path / "b.tar")
    assert entry.repo_tags == ["acme/app:latest"]
    # several tags in one commit
    before = commit_count(repo)
    assert_ok(run_cli("rm", repo, "acme/app:latest", "acme/tool:2.0"))
    assert commit_count(repo) == before + 1
    assert json.loads(run_cli("images", repo, "--format", "json").stdout) == []


def test_rm_unknown_tag_changes_nothing(tmp_path):
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("push", repo, f"docker-archive:{sample('fixtures', 'base.docker.tar')}"))
    before = snapshot(repo)
    assert_error(run_cli("rm", repo, "acme/base:1.0", "acme/base:nope"), 1, "acme/base:nope")
    assert snapshot(repo) == before


def test_empty_registry(tmp_path):
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("init", repo))
    proc = run_cli("images", repo, "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout) == []
    proc = run_cli("tags", repo, "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout) == []
    assert_error(run_cli("pull", repo, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'x.tar'}"), 1)
    assert not (tmp_path / "x.tar").exists()


# -- usage errors -------------------------------------------------------------------------------------
def _ref(tmp_path):
    return f"docker-archive:{sample('fixtures', 'app.docker.tar')}"


CLICK_USAGE = [
    pytest.param(lambda r, t: ["push"], "REPO", id="push-no-args"),
    pytest.param(lambda r, t: ["push", r], "SOURCES", id="push-no-source"),
    pytest.param(lambda r, t: ["pull", r, "acme/app:1.0"], "--output", id="pull-no-output"),
    pytest.param(lambda r, t: ["pull", r, "-o", f"oci:{t / 'x'}"], "IMAGES", id="pull-no-image"),
    pytest.param(lambda r, t: ["images", r, "--bogus"], "--bogus", id="unknown-option"),
    pytest.param(lambda r, t: ["--bogus"], "--bogus", id="unknown-global-option"),
    pytest.param(lambda r, t: ["frobnicate", r], "frobnicate", id="unknown-command"),
    pytest.param(lambda r, t: ["images", r, "--format", "yaml"], "yaml", id="bad-format"),
    pytest.param(lambda r, t: ["push", r, _ref(t), "--compression", "lz4"], "lz4", id="bad-compression"),
    pytest.param(lambda r, t: ["rm", r], "IMAGES", id="rm-no-image"),
]

LFSREG_USAGE = [
    # a bare NAME:TAG is an image in the Docker engine (tests/test_engine.py); these are neither
    pytest.param(lambda r, t: ["push", r, "Not An Image"], "Not An Image", id="source-without-transport"),
    pytest.param(lambda r, t: ["push", r, "ftp:/foo.tar"], "ftp:/foo.tar", id="unknown-transport"),
    pytest.param(lambda r, t: ["push", r, "docker-archive:"], "docker-archive:", id="source-without-path"),
    pytest.param(lambda r, t: ["pull", r, "acme/app", "-o", f"docker-archive:{t / 'x.tar'}"], "acme/app", id="pull-without-tag"),
    pytest.param(lambda r, t: ["pull", r, "acme/app:1.0", "-o", f"bogus:{t / 'x'}"], "bogus:", id="unknown-output"),
    pytest.param(lambda r, t: ["pull", r, "acme/app:1.0", "-o", str(t / "x.tar")], "x.tar", id="output-without-transport"),
    pytest.param(
        lambda r, t: ["pull", r, "acme/app:1.0", "-o", f"docker-archive:{t / 'x.tar'}:acme/x:1"], "docker-archive", id="archive-with-ref"
    ),
    pytest.param(lambda r, t: ["pull", r, "acme/app:1.0", "acme/tool:2.0", "-o", f"oci:{t / 'x'}:one"], "one", id="one-ref-two-images"),
    pytest.param(lambda r, t: ["rm", r, "acme/app@sha256:" + "a" * 64], "rm", id="rm-by-digest"),
    pytest.param(lambda r, t: ["pull", r, "acme/app@sha256:abc", "-o", f"oci:{t / 'x'}"], "sha256:abc", id="bad-digest"),
    pytest.param(
        lambda r, t: ["push", r, f"oci:{sample('fixtures', 'shared.oci')}", "--tag", "acme/one:1"], "--tag", id="tag-with-several-images"
    ),
    pytest.param(lambda r, t: ["push", r, f"docker-archive:{sample('fixtures', 'untagged.docker.tar')}"], "name", id="untagged-no-tag"),
]


@pytest.fixture
def app_registry(tmp_path):
    repo = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(repo))
    reg.push([f"docker-archive:{sample('fixtures', 'app.docker.tar')}"])
    reg.push([f"docker-archive:{sample('fixtures', 'tool.docker.tar')}"])
    return repo


@pytest.mark.parametrize(("command", "needle"), CLICK_USAGE)
def test_click_usage_errors(tmp_path, app_registry, command, needle):
    before = snapshot(app_registry)
    proc = run_cli(*command(app_registry, tmp_path))
    assert proc.returncode == 2, describe(proc)
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr, describe(proc)
    assert proc.stdout == ""
    assert snapshot(app_registry) == before


@pytest.mark.parametrize(("command", "needle"), CLICK_USAGE[:3])
def test_click_usage_errors_use_the_error_line_format(tmp_path, app_registry, command, needle):
    assert_error(run_cli(*command(app_registry, tmp_path)), 2, needle)


@pytest.mark.parametrize(("command", "needle"), LFSREG_USAGE)
def test_usage_errors(tmp_path, app_registry, command, needle):
    before = snapshot(app_registry)
    proc = run_cli(*command(app_registry, tmp_path))
    assert_error(proc, 2, needle)
    assert snapshot(app_registry) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.tar").exists()


def test_unknown_ref_in_source_is_not_a_usage_error(tmp_path, app_registry):
    before = snapshot(app_registry)
    proc = run_cli("push", app_registry, f"oci:{sample('fixtures', 'shared.oci')}:acme/nope:1")
    assert_error(proc, 1, "acme/nope:1")
    assert snapshot(app_registry) == before


def test_verbose_logs_to_stderr(tmp_path):
    repo = tmp_path / "reg.git"
    source = f"docker-archive:{sample('fixtures', 'base.docker.tar')}"
    quiet = run_cli("push", repo, source)
    assert_ok(quiet)
    assert quiet.stderr == ""
    loud = run_cli("-v", "rm", repo, "acme/base:1.0", spawn=True)  # -v in a real process (logging set up from scratch)
    assert_ok(loud)
    assert any(line.startswith("DEBUG lfsreg") for line in loud.stderr.splitlines()), describe(loud)
    loud = run_cli("-v", "push", repo, source, spawn=True)
    assert_ok(loud)
    debug = [line for line in loud.stderr.splitlines() if line.startswith("DEBUG ")]
    assert debug, describe(loud)
    assert "acme/base:1.0" in loud.stdout
    quiet = run_cli("images", repo)
    assert_ok(quiet)
    assert quiet.stderr == ""
