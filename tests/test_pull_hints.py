"""Pull hints (lfsreg/registry/hints.py): a name's ``_pull`` file lists the git ids of what a pull reads.

Against stock ``git http-backend`` with ``uploadpack.allowFilter``, nginx counting the exchanges:
a cold pull with hints fetches the hinted files in one exchange instead of walking the shard
trees; without the file it walks them; a file that lies (ids of other objects, ids the server
does not have, garbage) costs the exchanges it would have saved and gives the same image. The
file itself is written by push, read by stock git as any file, and ignored by ``verify``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clirun import run_cli
from gitenv import cli_env
from imageverify import FIXTURES
from test_partial_exchanges import _Requests

from lfsreg.digest import Digest
from lfsreg.registry import hints, layout

NAME = "acme/app"
PULL = f"{NAME}:1.0"
HINTS = f"{layout.NEW.name_dir(NAME)}/{hints.FILE}"


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, data: str | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env, input=data)
    return proc.stdout.strip()


def _set_hints(repo: Path, content: str | None, tmp: Path) -> None:
    """Commit on ``main`` of the bare ``repo``, with stock git, the hints file of acme/app replaced by ``content`` (None: removed)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    _git(repo, "read-tree", "main", env=env)
    if content is None:  # mode 0: out of the index
        _git(repo, "update-index", "--index-info", env=env, data=f"0 {'0' * 40}\t{HINTS}\n")
    else:
        blob = _git(repo, "hash-object", "-w", "--stdin", data=content)
        _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{HINTS}", env=env)
    commit = _git(repo, "commit-tree", _git(repo, "write-tree", env=env), "-p", "main", "-m", "hints by hand", env=env)
    _git(repo, "update-ref", "refs/heads/main", commit)


@pytest.fixture(scope="module")
def registry(git_http_server, tmp_path_factory) -> object:
    """acme/app:1.0 (gzip layers, so a pull reads its diffids records) and other/base:1, with filters on."""
    tmp = tmp_path_factory.mktemp("hints-src")
    repo = git_http_server.create_repo(f"hints/reg-{tmp.name}")
    env = cli_env(tmp, git_http_server)
    for tag, source in {PULL: f"oci:{FIXTURES / 'app.oci'}:1.0", "other/base:1": f"docker-archive:{FIXTURES / 'base.docker.tar'}"}.items():
        proc = run_cli("push", repo.url, source, "--tag", tag, env=env)
        assert proc.returncode == 0, proc.stderr
    # a second image under the same name: its hints go first, the first image's stay
    proc = run_cli("push", repo.url, f"oci:{FIXTURES / 'app-zstd.oci'}:1.0", "--tag", f"{NAME}:z", env=env)
    assert proc.returncode == 0, proc.stderr
    _git(repo.path, "config", "uploadpack.allowFilter", "true")
    return repo


def _pull(repo, server, tmp: Path) -> tuple[bytes, dict[str, int], str]:
    """A cold pull of acme/app:1.0 to a docker archive: its bytes, the git exchanges, stderr (-v)."""
    seen = _Requests(server, repo)
    out = tmp / "app.tar"
    proc = run_cli("-v", "pull", repo.url, PULL, "-o", f"docker-archive:{out}", env=cli_env(tmp, server))
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes(), seen.git(), proc.stderr


@pytest.mark.interop
def test_push_writes_hints_that_name_what_the_tree_holds(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    data = _git(repo.path, "show", f"main:{HINTS}").encode()
    images = hints.parse(data)
    digest = Digest.parse(_git(repo.path, "show", f"main:{layout.NEW.tag_path(NAME, '1.0')}"))
    zstd = Digest.parse(_git(repo.path, "show", f"main:{layout.NEW.tag_path(NAME, 'z')}"))
    assert list(images) == [zstd, digest]  # the last pushed first
    kinds = {entry[0] for entry in images[digest]}
    assert kinds == {"b", "l", "d"}, images[digest]  # gzip layers: a pull sizes them from their records
    assert {entry[0] for entry in images[zstd]} == {"b", "l"}  # zstd layers: sized from their frames, no records
    for files in images.values():
        for entry, sha in files.items():
            assert _git(repo.path, "rev-parse", f"main:{hints.file_of(layout.NEW, entry)}") == sha.decode(), entry
    # stock git sees one more file; lfsreg's verify reads the registry as before
    assert HINTS in _git(repo.path, "ls-tree", "-r", "--name-only", "main").splitlines()
    proc = run_cli("verify", repo.url, env=cli_env(tmp_path, git_http_server))
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.mark.interop
def test_a_pull_without_hints_walks_the_shards(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    hinted, counts, _ = _pull(repo, git_http_server, tmp_path / "hinted")
    assert counts == {"refs": 1, "upload-pack": 6, "receive-pack": 0}  # the tip, the name's levels, the hinted files
    _set_hints(repo.path, None, tmp_path)
    try:
        walked, counts, _ = _pull(repo, git_http_server, tmp_path / "walked")
        # four levels each (three shard levels and the file) for the manifest, the config with the pointers, the records
        assert counts == {"refs": 1, "upload-pack": 17, "receive-pack": 0}
        assert walked == hinted
    finally:
        _set_hints(repo.path, _hints_of(repo.path, "HEAD~1"), tmp_path)


def _hints_of(repo: Path, rev: str) -> str:
    return _git(repo, "show", f"{rev}:{HINTS}") + "\n"


@pytest.mark.interop
@pytest.mark.parametrize("lie", ["swapped", "absent", "garbage", "other-image"])
def test_hints_that_lie_cost_exchanges_and_nothing_else(registry, git_http_server, tmp_path: Path, lie: str) -> None:
    repo = registry
    honest = _hints_of(repo.path, "main")
    want, _, _ = _pull(repo, git_http_server, tmp_path / "honest")
    digest = _git(repo.path, "show", f"main:{layout.NEW.tag_path(NAME, '1.0')}")
    line = next(x for x in honest.splitlines() if x.startswith(digest))
    entries = line.split()[1:]
    ids = [e.split(":")[1] for e in entries]
    if lie == "swapped":  # each file hinted with another one's id: every hinted read fails its check
        lying = f"{digest} " + " ".join(f"{e.split(':')[0]}:{sha}" for e, sha in zip(entries, ids[1:] + ids[:1], strict=True))
    elif lie == "absent":  # ids the server has no object for: it refuses the whole fetch ("not our ref")
        lying = f"{digest} " + " ".join(f"{e.split(':')[0]}:{'0' * 39}{i % 10}" for i, e in enumerate(entries))
    elif lie == "garbage":
        lying = f"{digest} b{'x' * 64}:{ids[0]}\n\x00\xff not a hints line"
    else:  # the lines of the other image under the tag's digest
        other = next(x for x in honest.splitlines() if not x.startswith(digest))
        lying = f"{digest} {' '.join(other.split()[1:])}"
    _set_hints(repo.path, lying + "\n", tmp_path)
    try:
        got, counts, stderr = _pull(repo, git_http_server, tmp_path / "lied")
        assert got == want
        assert "does not filter" not in stderr and "whole tree" not in stderr, stderr
        # at most the walk's 17 and the fetch of the hinted ids (objects it brought are not fetched again)
        assert 6 < counts["upload-pack"] <= 18, counts
    finally:
        _set_hints(repo.path, honest, tmp_path)


# -- the file's format and its writers, on local registries (no server) ----------------------------


def test_parse_keeps_what_encode_writes_and_leaves_out_the_rest() -> None:
    a, b = Digest("sha256", "a" * 64), Digest("sha256", "b" * 64)
    images = {a: {"b" + "1" * 64: b"2" * 40, "l" + "3" * 64: b"4" * 40}, b: {"d" + "5" * 64: b"6" * 40, "r" + "7" * 64: b"8" * 40}}
    data = hints.encode(images)
    assert hints.parse(data) == images
    assert hints.parse(b"junk\n" + data + b"sha256:" + b"c" * 64 + b" x" + b"1" * 64 + b":" + b"2" * 40 + b"\n") == images
    many = {Digest("sha256", f"{i:064x}"): {} for i in range(hints.MAX_IMAGES + 5)}
    assert list(hints.parse(hints.encode(many))) == list(many)[: hints.MAX_IMAGES]  # the newest kept
    assert hints.parse(data + b"#" * hints.MAX_BYTES) == {}  # too big to be lfsreg's: not read
    lay = layout.NEW
    blob = b'{"a": 1}'
    assert hints.genuine(lay, lay.blob_path(Digest.of_bytes(blob)), blob)
    assert not hints.genuine(lay, lay.blob_path(a), blob)
    assert not hints.genuine(lay, f"{lay.blob_path(Digest.of_bytes(blob))}/x", blob)  # no such file in the layout
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{a.hex}\nsize 3\n".encode()
    assert hints.genuine(lay, lay.layer_path(a), pointer) and not hints.genuine(lay, lay.layer_path(b), pointer)
    assert not hints.genuine(lay, lay.diffid_path(a), b"{}")


def test_every_tag_writer_keeps_hints_and_the_last_tag_takes_them_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFSREG_CACHE_DIR", str(tmp_path / "cache"))
    reg, other = tmp_path / "reg.git", tmp_path / "other.git"
    for where, source, tag in ((reg, f"oci:{FIXTURES / 'tool.oci'}:2.0", "2"), (other, f"oci:{FIXTURES / 'app.oci'}:1.0", "1.0")):
        proc = run_cli("push", str(where), source, "--tag", f"{NAME}:{tag}")
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("copy", str(other), str(reg), PULL)  # a writer other than push
    assert proc.returncode == 0, proc.stderr
    digests = [Digest.parse(_git(reg, "show", f"main:{layout.NEW.tag_path(NAME, t)}")) for t in ("1.0", "2")]
    images = hints.parse(_git(reg, "show", f"main:{HINTS}").encode())
    assert list(images) == digests and all(images.values())  # the copied image first
    for ref in (PULL, f"{NAME}:2"):
        proc = run_cli("rm", str(reg), ref)
        assert proc.returncode == 0, proc.stderr
        listed = _git(reg, "ls-tree", "-r", "--name-only", "main").splitlines()
        assert (HINTS in listed) == (ref == PULL), listed  # gone with the name's last tag: no directory is left behind
    assert not [p for p in listed if p.startswith("repositories/")], listed


@pytest.mark.interop
def test_copy_from_a_remote_reads_the_hinted_files_at_once(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    env = cli_env(tmp_path, git_http_server)
    seen = _Requests(git_http_server, repo)
    proc = run_cli("copy", repo.url, str(tmp_path / "local.git"), PULL, env=env)
    assert proc.returncode == 0, proc.stderr
    # as a pull: the tip, the name's levels with its tag files and hints, the hinted files
    assert seen.git() == {"refs": 1, "upload-pack": 6, "receive-pack": 0}
    pulled = tmp_path / "copied.tar"
    assert run_cli("pull", str(tmp_path / "local.git"), PULL, "-o", f"docker-archive:{pulled}", env=env).returncode == 0
    assert pulled.read_bytes() == _pull(repo, git_http_server, tmp_path / "direct")[0]


@pytest.mark.interop
def test_a_pull_of_an_index_takes_its_children_from_the_hints(git_http_server, tmp_path: Path) -> None:
    repo = git_http_server.create_repo(f"hints/multi-{tmp_path.name}")
    env = cli_env(tmp_path, git_http_server)
    proc = run_cli("push", repo.url, f"oci:{FIXTURES / 'multi.oci'}:1.0", "--tag", "acme/multi:1.0", env=env)
    assert proc.returncode == 0, proc.stderr
    _git(repo.path, "config", "uploadpack.allowFilter", "true")
    hinted = hints.parse(_git(repo.path, "show", f"main:{layout.NEW.name_dir('acme/multi')}/{hints.FILE}").encode())
    (entries,) = hinted.values()
    blobs = [e for e in entries if e[0] == "b"]
    assert len(blobs) >= 5, entries  # the index, its manifests and their configs
    seen = _Requests(git_http_server, repo)
    out = tmp_path / "layout"
    proc = run_cli("pull", repo.url, "acme/multi:1.0", "-o", f"oci:{out}:1.0", env=cli_env(tmp_path / "pull", git_http_server))
    assert proc.returncode == 0, proc.stderr
    assert seen.git() == {"refs": 1, "upload-pack": 6, "receive-pack": 0}  # as for one manifest: the children come with the index
    assert len(list((out / "blobs" / "sha256").iterdir())) >= len(blobs)


@pytest.mark.interop
def test_inspect_of_a_remote_image_reads_the_hinted_files_at_once(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    seen = _Requests(git_http_server, repo)
    proc = run_cli("inspect", repo.url, PULL, "--format", "json", env=cli_env(tmp_path, git_http_server))
    assert proc.returncode == 0, proc.stderr
    assert seen.git() == {"refs": 1, "upload-pack": 6, "receive-pack": 0}  # as a pull
    digest = _git(repo.path, "show", f"main:{layout.NEW.tag_path(NAME, '1.0')}")
    assert digest in proc.stdout
