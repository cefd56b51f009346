"""How many exchanges a cold pull and a cold push make with a remote registry over HTTP (issue 13 item 1).

Every ``POST git-upload-pack`` starts ``git http-backend`` + ``git upload-pack`` on the server
(and ``pack-objects``): on a big registry each costs tens of milliseconds, so the time of a
cold pull or push is mostly their number. nginx's access log counts them. The registry here is
small, but the levels a pull or push goes through are the same as in a big one.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from clirun import run_cli
from cutproxy import pipe
from gitenv import cli_env
from imageverify import FIXTURES
from peers.nginx import RepoLog

IMAGES = {"acme/app:1.0": f"oci:{FIXTURES / 'app.oci'}:1.0", "other/base:1": f"docker-archive:{FIXTURES / 'base.docker.tar'}"}
NEW = ("acme/tool:2.0", f"oci:{FIXTURES / 'tool.oci'}:2.0")  # its layer is in the registry already
ZSTD = ("acme/zstd:1.0", f"oci:{FIXTURES / 'app-zstd.oci'}:1.0")  # new layers whose diffids records name app's gzip ones
PULL = "acme/app:1.0"


def _records(repo: Path) -> list[str]:
    """The git ids of the diffids/ records in ``repo``'s tip."""
    tree = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "main", "diffids"], capture_output=True, text=True, check=True).stdout
    return [line.split()[2] for line in tree.splitlines()]


def _filters(repo: Path, on: bool) -> None:
    args = ["config", "uploadpack.allowFilter", "true"] if on else ["config", "--unset", "uploadpack.allowFilter"]
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=on)


@pytest.fixture(scope="module")
def registry(git_http_server, tmp_path_factory) -> object:
    """A registry of two images on git http-backend + giftless, with ``uploadpack.allowFilter``."""
    tmp = tmp_path_factory.mktemp("exchanges-src")
    repo = git_http_server.create_repo(f"exchanges/reg-{tmp.name}")
    env = cli_env(tmp, git_http_server)
    for tag, source in IMAGES.items():
        proc = run_cli("push", repo.url, source, "--tag", tag, env=env)
        assert proc.returncode == 0, proc.stderr
    _filters(repo.path, True)
    return repo


class _Requests(RepoLog):
    """The git requests nginx logs for one repository, counted by kind, from when this was made."""

    def count(self) -> dict[str, int]:
        out = {"refs": 0, "upload-pack": 0, "receive-pack": 0, "lfs": 0}
        for line in self.new_lines():
            if "/info/lfs/" in line:
                out["lfs"] += 1
            elif re.search(r'"GET [^ ]*/info/refs\?service=git-upload-pack ', line):
                out["refs"] += 1
            elif '"POST ' in line and "/git-upload-pack " in line:
                out["upload-pack"] += 1
            elif "git-receive-pack " in line:
                out["receive-pack"] += 1
        return out

    def git(self) -> dict[str, int]:
        """:meth:`count` without the LFS requests."""
        return {k: v for k, v in self.count().items() if k != "lfs"}


@pytest.mark.interop
def test_cold_pull_and_push_count_their_exchanges(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    env = cli_env(tmp_path, git_http_server)
    seen = _Requests(git_http_server, repo)
    out = tmp_path / "app.tar"
    proc = run_cli("-v", "pull", repo.url, PULL, "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "does not filter" not in proc.stderr and "protocol v2" not in proc.stderr
    # refs: one GET (v0's advertisement, no ls-refs); the tip; the name's first fan-out level with the shard
    # directories; its second; its bucket with the trees down to the name's directory; the name's _tags
    # with the tag files and its hints file (format version 3: acme with the shards, then app with _tags and
    # files: two fewer); the hinted files (manifest, config, pointers, diffids records) in one. Without
    # hints, four levels each (three shard levels, then the file) for the manifest, the config with the
    # layers' pointers, the records: 17 (test_a_pull_without_hints_walks_the_shards)
    assert seen.git() == {"refs": 1, "upload-pack": 6, "receive-pack": 0}

    seen = _Requests(git_http_server, repo)
    warm = run_cli("pull", repo.url, PULL, "-o", f"docker-archive:{tmp_path / 'warm.tar'}", env=env)
    assert warm.returncode == 0, warm.stderr
    assert seen.count() == {"refs": 1, "upload-pack": 0, "receive-pack": 0, "lfs": 0}  # one ref query, nothing else
    assert (tmp_path / "warm.tar").read_bytes() == out.read_bytes()

    seen = _Requests(git_http_server, repo)
    push = run_cli("push", repo.url, NEW[1], "--tag", NEW[0], env=cli_env(tmp_path / "push", git_http_server))
    assert push.returncode == 0, push.stderr
    # the tip; the shard directories with the names' level; the reuse checks' three shard levels (pointer,
    # record) with the name's; the pointer and record found; the manifest's and config's shard levels
    # (a version 1 registry: 4)
    assert seen.git() == {"refs": 1, "upload-pack": 7, "receive-pack": 2}

    seen = _Requests(git_http_server, repo)
    push = run_cli("push", repo.url, ZSTD[1], "--tag", ZSTD[0], env=cli_env(tmp_path / "zstd", git_http_server))
    assert push.returncode == 0, push.stderr
    # as above, then the pointers the records name (four levels); after the upload, the change set's
    # shard levels and the config it compares (a version 1 registry: 8; before partial fetch: 3 + 11)
    assert seen.git() == {"refs": 1, "upload-pack": 14, "receive-pack": 2}


@pytest.mark.interop
def test_without_filters_a_pull_is_one_fetch_and_the_same_image(registry, git_http_server, tmp_path: Path) -> None:
    repo = registry
    filtered = tmp_path / "filtered.tar"
    assert run_cli("pull", repo.url, PULL, "-o", f"docker-archive:{filtered}", env=cli_env(tmp_path / "a", git_http_server)).returncode == 0
    _filters(repo.path, False)
    try:
        seen = _Requests(git_http_server, repo)
        whole = tmp_path / "whole.tar"
        proc = run_cli("-v", "pull", repo.url, PULL, "-o", f"docker-archive:{whole}", env=cli_env(tmp_path / "b", git_http_server))
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("does not filter") == 1, proc.stderr
        assert seen.git() == {"refs": 1, "upload-pack": 1, "receive-pack": 0}  # protocol v0: refs, then everything
        assert whole.read_bytes() == filtered.read_bytes()
    finally:
        _filters(repo.path, True)


def _strip_git_protocol(data: bytes) -> bytes:
    return re.sub(rb"(?i)\r\nGit-Protocol: [^\r]*", b"", data)


class _Relay:
    """A TCP relay to the HTTP server that counts the connections made through it; with ``strip_v2`` it drops
    ``Git-Protocol`` request headers: a server that never speaks protocol v2 (git http-backend behind a front
    that does not pass ``GIT_PROTOCOL`` on), with ``uploadpack.allowFilter``."""

    def __init__(self, port: int, *, strip_v2: bool = False) -> None:
        self.target = port
        self.strip_v2 = strip_v2
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.target))
            strip = _strip_git_protocol if self.strip_v2 else None
            threading.Thread(target=pipe, args=(client, server, strip), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.interop
def test_a_server_that_refuses_protocol_v2_gets_the_old_exchanges(registry, git_http_server, tmp_path: Path) -> None:
    """Refs from v0, then a v2 fetch the server cannot answer: asked again as before, said once, same image."""
    repo = registry
    proxy = _Relay(git_http_server.port, strip_v2=True)
    try:
        url = repo.url.replace(f":{git_http_server.port}/", f":{proxy.port}/")
        out = tmp_path / "app.tar"
        proc = run_cli("-v", "pull", url, PULL, "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "a", git_http_server))
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("did not answer a protocol v2 fetch") == 1, proc.stderr
        assert proc.stderr.count("does not filter") == 1, proc.stderr  # v0 only: the whole tree
        direct = tmp_path / "direct.tar"
        env = cli_env(tmp_path / "b", git_http_server)
        assert run_cli("pull", repo.url, PULL, "-o", f"docker-archive:{direct}", env=env).returncode == 0
        assert out.read_bytes() == direct.read_bytes()
    finally:
        proxy.close()


@pytest.mark.interop
def test_fetches_by_id_share_one_connection_and_a_layout_pull_reads_no_records(registry, git_http_server, tmp_path: Path) -> None:
    """The exchanges after the tip reuse one connection (one TLS handshake on a real host, not one each);
    a pull into an OCI layout keeps layers as stored: it fetches no diffids/ record (its hints name them)."""
    repo = registry
    relay = _Relay(git_http_server.port)
    try:
        url = repo.url.replace(f":{git_http_server.port}/", f":{relay.port}/")
        seen = _Requests(git_http_server, repo)
        proc = run_cli("pull", url, PULL, "-o", f"oci:{tmp_path / 'layout'}:1.0", env=cli_env(tmp_path, git_http_server))
        assert proc.returncode == 0, proc.stderr
        # the tip; the name's fan-out levels (the first with blobs/ and layers/ shards), its bucket, its _tags
        # with its hints; the hinted manifest, config and pointers (without hints: 13, test_a_pull_without_hints_walks_the_shards)
        counts = seen.count()
        assert {k: v for k, v in counts.items() if k != "lfs"} == {"refs": 1, "upload-pack": 6, "receive-pack": 0}
        records = _records(repo.path)
        assert records, "the registry has diffids records (acme/app's layers are gzip)"
        mirrors = list((tmp_path / "cache" / "mirrors").glob("*.git"))
        held = subprocess.run(
            ["git", "-C", str(mirrors[0]), "cat-file", "--batch-check=%(objectname)"], input="\n".join(records) + "\n",
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert [line.split()[-1] for line in held.splitlines()] == ["missing"] * len(records), held
        # refs and the tip (dulwich closes its connections), the fetches by id (one for all), LFS (at most one each)
        assert relay.connections <= 3 + counts["lfs"], relay.connections
    finally:
        relay.close()
