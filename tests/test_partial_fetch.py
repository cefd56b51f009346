"""Partial fetch of a remote registry's metadata (issue 13 item 1).

A registry of several images on stock ``git http-backend`` (and the same repository over SSH),
with and without ``uploadpack.allowFilter``: a cold pull and a push fetch only the objects on
the paths they read (counted in the mirror, which holds exactly what the server sent), and the
results are the same either way. The registry stays readable by stock git + git-lfs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clirun import run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import FIXTURES
from peers.nginx import log_lines

from lfsreg.registry import layout

IMAGES = {
    "acme/app:1.0": f"oci:{FIXTURES / 'app.oci'}:1.0",
    "acme/tool:2.0": f"oci:{FIXTURES / 'tool.oci'}:2.0",
    "other/base:1": f"docker-archive:{FIXTURES / 'base.docker.tar'}",
}
PUSHERS = 4
NEW = ("acme/zstd:1.0", f"oci:{FIXTURES / 'app-zstd.oci'}:1.0")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _filters(repo: Path, on: bool) -> None:
    if on:
        _git(repo, "config", "uploadpack.allowFilter", "true")
    else:
        subprocess.run(["git", "-C", str(repo), "config", "--unset", "uploadpack.allowFilter"], capture_output=True, check=False)


def _mirror_objects(cache: Path) -> set[str]:
    """Every object in the cache's mirrors: what the server sent (loose and packed)."""
    out: set[str] = set()
    for mirror in (cache / "mirrors").glob("*.git"):
        listed = _git(mirror, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
        out |= set(listed.split())
    return out


def _path_objects(repo: Path, commit: str, paths: list[str]) -> set[str]:
    """The commit, its root tree and what is in it (what the fetch of a tip brings), and every tree and blob
    along ``paths`` at ``commit`` on the server (absent paths: their existing part)."""
    out = {commit, _git(repo, "rev-parse", f"{commit}^{{tree}}").strip(), *_git(repo, "ls-tree", "--format=%(objectname)", commit).split()}
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            spec = f"{commit}:{'/'.join(parts[:i])}"
            found = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", spec], capture_output=True, text=True)
            if found.returncode != 0:
                break
            out.add(found.stdout.strip())
    return out


def _image_paths(repo: Path, commit: str, name: str, tag: str) -> list[str]:
    """The paths a pull of ``name:tag`` may read: tag file, hints, manifest, config, layer pointers, their diffids records, root files."""
    digest = _git(repo, "show", f"{commit}:{layout.NEW.tag_path(name, tag)}").strip().split(":")[1]
    paths = [f"{layout.NEW.tags_dir(name)}/{tag}", "lfsreg.json", ".gitattributes", ".lfsconfig", "lfsreg-config.json"]
    paths.append(f"{layout.NEW.name_dir(name)}/_pull")  # the name's pull hints (lfsreg/registry/hints.py)
    manifest = json.loads(_git(repo, "show", f"{commit}:{layout.NEW.hex_path('blobs', digest)}"))
    paths.append(layout.NEW.hex_path("blobs", digest))
    for desc in [manifest["config"], *manifest["layers"]]:
        hexd = desc["digest"].split(":")[1]
        kind = "blobs" if desc is manifest["config"] else "layers"
        paths.append(layout.NEW.hex_path(kind, hexd))
    config = json.loads(_git(repo, "show", f"{commit}:{paths[-len(manifest['layers']) - 1]}"))
    for diff_id in config["rootfs"]["diff_ids"]:
        hexd = diff_id.split(":")[1]
        paths.append(layout.NEW.hex_path("diffids", hexd))
    return paths


@pytest.fixture(scope="module")
def served(git_http_server, tmp_path_factory) -> tuple[object, Path]:
    """A registry of three images on the HTTP server, pushed once for the module."""
    tmp = tmp_path_factory.mktemp("partial-src")
    repo = git_http_server.create_repo(f"partial/reg-{tmp.name}")
    env = cli_env(tmp, git_http_server)
    for tag, source in IMAGES.items():
        proc = run_cli("push", repo.url, source, "--tag", tag, env=env)
        assert proc.returncode == 0, proc.stderr
    return repo, tmp


@pytest.mark.interop
@pytest.mark.parametrize("filters", [True, False], ids=["filter", "no-filter"])
def test_cold_pull_fetches_only_the_paths_it_reads(served, git_http_server, tmp_path: Path, filters: bool) -> None:
    repo, _ = served
    _filters(repo.path, filters)
    env = cli_env(tmp_path, git_http_server)
    out = tmp_path / "app.tar"
    before = _upload_pack_posts(git_http_server, repo)
    proc = run_cli("-v", "pull", repo.url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    posts = _upload_pack_posts(git_http_server, repo) - before
    tip = repo.main()
    assert tip is not None
    got = _mirror_objects(tmp_path / "cache")
    if filters:
        allowed = _path_objects(repo.path, tip, _image_paths(repo.path, tip, "acme/app", "1.0"))
        assert got <= allowed, f"fetched outside the paths read: {sorted(got - allowed)}"
        assert "does not filter" not in proc.stderr
        # the tip (refs: one GET); acme with the shards' directories; app with _tags and its file; then two
        # levels each: the manifest, the config with the pointers, the records (tests/test_partial_exchanges.py)
        assert posts <= 17, posts  # four levels (three shard levels, the file) per step; version 4: two for the name's fan-out
    else:
        tree = _git(repo.path, "ls-tree", "-r", "-t", "--format=%(objectname)", tip).split()
        everything = {tip, _git(repo.path, "rev-parse", f"{tip}^{{tree}}").strip(), *tree}
        assert got >= everything
        assert proc.stderr.count("does not filter") == 1, proc.stderr
    # the same image either way
    again = tmp_path / "again.tar"
    _filters(repo.path, not filters)
    second = run_cli("pull", repo.url, "acme/app:1.0", "-o", f"docker-archive:{again}", env=cli_env(tmp_path / "b", git_http_server))
    assert second.returncode == 0, second.stderr
    assert out.read_bytes() == again.read_bytes()


@pytest.mark.interop
def test_push_fetches_only_the_trees_it_changes_and_stock_git_reads_it(served, git_http_server, tmp_path: Path) -> None:
    repo, _ = served
    _filters(repo.path, True)
    env = cli_env(tmp_path, git_http_server)
    before = repo.main()
    assert before is not None
    proc = run_cli("push", repo.url, NEW[1], "--tag", NEW[0], env=env)
    assert proc.returncode == 0, proc.stderr
    after = repo.main()
    assert after != before
    # what the push fetched: the old commit and trees along the paths the new one changes (plus the files it read)
    # (every file of the new image: the change set, compared with what is there), and the files it read
    # to reuse stored layers: the diffids records of its layers and the pointers they name
    changed = _image_paths(repo.path, after, *NEW[0].split(":"))
    reused = [p for p in changed if p.startswith("diffids/")]
    for path in list(reused):
        found = subprocess.run(["git", "-C", str(repo.path), "show", f"{before}:{path}"], capture_output=True, text=True)
        if found.returncode == 0:
            hexd = json.loads(found.stdout)["digest"].split(":")[1]
            reused.append(layout.NEW.hex_path("layers", hexd))
    allowed = _path_objects(repo.path, before, [*changed, *reused, "lfsreg.json", ".gitattributes", ".lfsconfig", "lfsreg-config.json"])
    got = _mirror_objects(tmp_path / "cache") - set(_git(repo.path, "rev-list", "--objects", after, f"^{before}").split())
    assert got <= allowed, f"fetched outside the changed paths: {sorted(got - allowed)}"
    # stock git + git-lfs clone and read the registry
    git_env = isolated_git_env(tmp_path)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", repo.auth_url, str(clone)], cwd=tmp_path, env=git_env)
    run_git(["fsck", "--no-progress"], cwd=clone, env=git_env)
    listed = run_cli("tags", repo.url, "--format", "json", env=cli_env(tmp_path / "c", git_http_server))
    assert {f"{r['name']}:{r['tag']}" for r in json.loads(listed.stdout)} == {*IMAGES, NEW[0]}


@pytest.mark.interop
@pytest.mark.parametrize("filters", [True, False], ids=["filter", "no-filter"])
def test_cold_pull_over_ssh_fetches_only_the_paths_it_reads(served, sshd_server, tmp_path: Path, filters: bool) -> None:
    repo, _ = served
    _filters(repo.path, filters)
    key = sshd_server.add_key(repo)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    out = tmp_path / "tool.tar"
    proc = run_cli("-v", "pull", sshd_server.url(repo), "acme/tool:2.0", "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    tip = repo.main()
    assert tip is not None
    got = _mirror_objects(tmp_path / "cache")
    allowed = _path_objects(repo.path, tip, _image_paths(repo.path, tip, "acme/tool", "2.0"))
    if filters:
        assert got <= allowed, f"fetched outside the paths read: {sorted(got - allowed)}"
    else:
        assert not got <= allowed  # the whole tree
        assert proc.stderr.count("does not filter") == 1, proc.stderr


def _run_apart(workdir: Path, argvs: list[list[str]], envs: list[dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """``lfsreg ARGV`` in one process each, each with its own environment (its own cache), released together."""
    import sys
    import time

    from racers import RUN_TIMEOUT, START_TIMEOUT
    from test_concurrency import DRIVER

    workdir.mkdir(parents=True, exist_ok=True)
    barrier = workdir / "go"
    procs = []
    for i, (argv, env) in enumerate(zip(argvs, envs, strict=True)):
        ready = workdir / f"ready-{i}"
        cmd = [sys.executable, "-c", DRIVER, str(barrier), str(ready), *argv]
        procs.append((ready, argv, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(ready.exists() for ready, _, _ in procs):
            assert time.monotonic() < deadline, "pushers did not start"
            time.sleep(0.005)
        barrier.touch()
        out = []
        for _, argv, proc in procs:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            assert "Traceback" not in stderr, stderr
            out.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
        return out
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.interop
def test_concurrent_pushers_with_partial_mirrors_lose_nothing(served, git_http_server, tmp_path: Path) -> None:
    """4 pushers, each with its own cold cache (4 CI jobs), push 4 tags at once through a filtering server:
    each fetches part of the tree, re-applies on the moved branch, and every tag lands."""
    from test_concurrency import check_history
    from test_git_durability import fsck_clean
    from test_remote_concurrency import SOURCES, _env

    repo, _ = served
    _filters(repo.path, True)
    before = int(_git(repo.path, "rev-list", "--count", "main"))
    tags = [f"jobs/push:{i}" for i in range(PUSHERS)]
    envs = [
        _env(tmp_path / f"job{i}", LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password) for i in range(PUSHERS)
    ]
    argvs = [["push", repo.url, SOURCES[i % len(SOURCES)], "--tag", tag] for i, tag in enumerate(tags)]
    results = _run_apart(tmp_path / "run", argvs, envs)
    assert [r.returncode for r in results] == [0] * PUSHERS, [r.stderr for r in results]
    for i in range(PUSHERS):
        assert list((tmp_path / f"job{i}" / "cache" / "mirrors").glob("*.git/partial")), "a mirror fetched whole"
    listed = run_cli("tags", repo.url, "--format", "json", env=cli_env(tmp_path / "list", git_http_server))
    assert {f"{r['name']}:{r['tag']}" for r in json.loads(listed.stdout)} >= set(tags)
    git_env = isolated_git_env(tmp_path)
    check_history(repo.path, git_env, before + PUSHERS)
    fsck_clean(repo.path, git_env)
    assert json.loads(_git(repo.path, "show", "main:lfsreg.json"))["version"] == layout.NEW_VERSION  # a version 4 registry


def _upload_pack_posts(server, repo) -> int:
    # settled: the last request of the command before may not be logged yet when it exits
    return sum(1 for line in log_lines(server.access_log) if f"POST /{repo.name}.git/git-upload-pack" in line)


@pytest.mark.interop
def test_listings_read_only_the_subtrees_they_need(served, git_http_server, tmp_path: Path) -> None:
    """``tags REPO NAME`` reads that name's tag files; ``images --image GLOB`` the matching names' images;
    the whole registry's listing reads trees, tag files, manifests and configs, never layers/ or diffids/."""
    repo, _ = served
    _filters(repo.path, True)
    tip = repo.main()
    assert tip is not None
    root_files = ["lfsreg.json", ".gitattributes", ".lfsconfig", "lfsreg-config.json"]

    env = cli_env(tmp_path / "one", git_http_server)
    before = _upload_pack_posts(git_http_server, repo)
    proc = run_cli("tags", repo.url, "acme/app", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert [r["tag"] for r in json.loads(proc.stdout)] == ["1.0"]
    got = _mirror_objects(tmp_path / "one" / "cache")
    allowed = _path_objects(repo.path, tip, [f"{layout.NEW.tags_dir('acme/app')}/1.0", *root_files])
    assert got <= allowed, sorted(got - allowed)
    # ls-refs, the tip (with the root and its trees), then one exchange per level: acme, app, _tags with its files
    assert _upload_pack_posts(git_http_server, repo) - before <= 5

    env = cli_env(tmp_path / "glob", git_http_server)
    proc = run_cli("images", repo.url, "--image", "acme/t*", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)] == ["acme/tool"]
    got = _mirror_objects(tmp_path / "glob" / "cache")
    image = [p for p in _image_paths(repo.path, tip, "acme/tool", "2.0") if not p.startswith(("layers/", "diffids/"))]
    # a glob with wildcards reads every name's bucket (format version 4) and the directories above the names it may match
    name_dirs = {p.split("/_tags/")[0] for p in _git(repo.path, "ls-tree", "-r", "--name-only", tip, "repositories").split()}
    allowed = _path_objects(repo.path, tip, [*image, *name_dirs])
    assert got <= allowed, sorted(got - allowed)

    env = cli_env(tmp_path / "all", git_http_server)
    for command in ("tags", "images"):
        before = _upload_pack_posts(git_http_server, repo)
        proc = run_cli(command, repo.url, "--format", "json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)) >= len(IMAGES)
        assert _upload_pack_posts(git_http_server, repo) - before <= 12, command
    below = [_git(repo.path, "ls-tree", "-r", "-t", "--format=%(objectname)", f"{tip}:{top}").split() for top in ("layers", "diffids")]
    layers = {sha for shas in below for sha in shas}
    assert not _mirror_objects(tmp_path / "all" / "cache") & layers


@pytest.mark.interop
def test_dulwich_smart_http_server_gets_the_whole_tree_fetch(tmp_path: Path) -> None:
    """dulwich's own smart-HTTP server (protocol v0, no filter): listings fetch the whole tree, said once under -v."""
    import threading

    from dulwich.server import DictBackend
    from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_server, make_wsgi_chain

    from lfsreg.git.store import GitStore

    local = tmp_path / "reg.git"
    env = cli_env(tmp_path, None)
    for tag, source in list(IMAGES.items())[:2]:
        assert run_cli("push", str(local), source, "--tag", tag, env=env).returncode == 0
    store = GitStore.open(str(local))
    app = make_wsgi_chain(DictBackend({"/reg.git": store.repo}))
    server = make_server("127.0.0.1", 0, app, handler_class=WSGIRequestHandlerLogger, server_class=WSGIServerLogger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/reg.git"
        proc = run_cli("-v", "images", url, "--format", "json", env=cli_env(tmp_path / "c", None))
        assert proc.returncode == 0, proc.stderr
        assert sorted(r["name"] for r in json.loads(proc.stdout)) == ["acme/app", "acme/tool"]
        assert proc.stderr.count("does not filter") == 1
        expected = run_cli("images", str(local), "--format", "json", env=env)
        assert json.loads(proc.stdout) == json.loads(expected.stdout)
    finally:
        server.shutdown()
        store.close()


@pytest.mark.interop
def test_verify_after_a_partial_pull_fetches_the_whole_history(served, git_http_server, tmp_path: Path) -> None:
    """verify reads every object of the tip: on a mirror fetched in part it fetches the tip's whole tree in one exchange."""
    repo, _ = served
    _filters(repo.path, True)
    env = cli_env(tmp_path, git_http_server)
    assert run_cli("tags", repo.url, "acme/app", env=env).returncode == 0
    (mirror,) = (tmp_path / "cache" / "mirrors").glob("*.git")
    assert (mirror / "partial").exists()
    before = _upload_pack_posts(git_http_server, repo)
    proc = run_cli("verify", repo.url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _upload_pack_posts(git_http_server, repo) - before <= 1  # the whole tree (refs: one GET; the tip is there)
    tip = repo.main()
    tree = _git(repo.path, "ls-tree", "-r", "-t", "--format=%(objectname)", tip).split()
    assert set(tree) <= _mirror_objects(tmp_path / "cache")
    before = _upload_pack_posts(git_http_server, repo)
    assert run_cli("verify", repo.url, env=env).returncode == 0
    assert _upload_pack_posts(git_http_server, repo) - before == 0  # the refs (one GET): nothing fetched again
