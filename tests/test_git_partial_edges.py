"""Edges of :mod:`lfsreg.git.partial` (issue 9 coverage): answers a fetch by id must refuse, storage choices, file:// copies.

The wire tests run against the session's stock ``git http-backend`` (with and without
``uploadpack.allowFilter``); the answer parser is fed hand-built pkt-line streams (a hangup, an
``ERR``, a side-band error, an answer over :data:`~lfsreg.git.partial.MAX_ANSWER`).
"""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import pytest
from dulwich.client import LocalGitClient, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException
from dulwich.objects import Tree
from dulwich.protocol import Protocol, pkt_line

from lfsreg.errors import LocalStorageError, ProtocolError
from lfsreg.git import partial
from lfsreg.git.store import GitStore

FILES = {f"d{i}/e/f{j}": f"content {i} {j}\n".encode() for i in range(3) for j in range(3)}


def _registry(path: Path) -> tuple[GitStore, str]:
    """A repository with three directories of three files each, its branch at the commit returned."""
    store = GitStore.init(str(path))
    commit = store.make_commit(None, {p: store.write_blob(data) for p, data in FILES.items()}, "files")
    assert store.compare_and_swap(None, commit)
    return store, commit


def _tree(store: GitStore, commit: str, path: str = "") -> bytes:
    sha = bytes(store.objects.get(commit.encode()).tree)
    for part in filter(None, path.split("/")):
        tree = store.objects.get(sha)
        assert isinstance(tree, Tree)
        sha = bytes(tree[part.encode()][1])
    return sha


def _packs(store: GitStore) -> list[Path]:
    return sorted((Path(store.path) / "objects" / "pack").glob("*.pack"))


def _loose(store: GitStore) -> int:
    return sum(1 for d in (Path(store.path) / "objects").iterdir() if len(d.name) == 2 for _ in d.iterdir())


# -- the answer parser -------------------------------------------------------------------------


def _answer(*pkts: bytes | None) -> Protocol:
    raw = b"".join(b"0001" if p is None else b"0000" if p == b"" else pkt_line(p) for p in pkts)
    return Protocol(io.BytesIO(raw).read, lambda data: None)


def test_answer_sections_before_the_pack_are_skipped_and_progress_is_not_data() -> None:
    proto = _answer(b"acknowledgments\n", b"NAK\n", None, b"packfile\n", b"\x02counting\n", b"\x01PACK", b"\x01rest", b"")
    out = io.BytesIO()
    partial._read_pack(proto, out)
    assert out.getvalue() == b"PACKrest"


def test_answer_err_line_means_unsupported_and_side_band_error_is_a_protocol_error() -> None:
    with pytest.raises(partial._Unsupported, match="upload-pack: not our ref"):
        partial._read_pack(_answer(b"ERR upload-pack: not our ref\n"), io.BytesIO())
    with pytest.raises(GitProtocolError, match="pack-objects died"):
        partial._read_pack(_answer(b"packfile\n", b"\x01PACK", b"\x03pack-objects died\n", b""), io.BytesIO())


def test_answer_cut_short_is_a_hangup() -> None:
    with pytest.raises(HangupException):
        partial._read_pack(_answer(b"packfile\n", b"\x01PACK"), io.BytesIO())


def test_answer_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partial, "MAX_ANSWER", 8)
    proto = _answer(b"packfile\n", b"\x01" + b"x" * 8, b"\x01" + b"y", b"")
    with pytest.raises(ProtocolError, match="more than 0 MiB for a fetch of objects by id"):
        partial._read_pack(proto, io.BytesIO())


# -- fetch by id in-process: a lacking answer, a local client, storage choices ---------------


def test_an_answer_without_the_wanted_object_is_a_protocol_error(tmp_path: Path) -> None:
    source, commit = _registry(tmp_path / "src.git")
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    fetcher = partial.ObjectFetcher(mirror, lambda exchange: b"")  # the server answered with no pack
    wanted = _tree(source, commit, "d0")
    with pytest.raises(ProtocolError, match=f"did not send object {wanted.decode()}"):
        fetcher.fetch([wanted])
    assert fetcher.requests == 1 and not mirror.objects.has(wanted)


def test_a_local_client_cannot_fetch_by_id_and_the_fetcher_stops_asking(tmp_path: Path) -> None:
    source, commit = _registry(tmp_path / "src.git")
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    calls: list[int] = []

    def call(exchange):
        calls.append(1)
        return exchange(LocalGitClient(), source.path)

    fetcher = partial.ObjectFetcher(mirror, call)
    assert fetcher.fetch([_tree(source, commit, "d0")]) is False
    assert fetcher.working is False and fetcher.requests == 0
    assert fetcher.fetch([_tree(source, commit, "d1")]) is False and len(calls) == 1  # not asked again
    assert fetcher.fetch([]) is False


def test_set_partial_marks_and_unmarks_and_names_a_storage_failure(tmp_path: Path) -> None:
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    partial.set_partial(mirror, True)
    assert partial.is_partial(mirror)
    partial.set_partial(mirror, False)
    partial.set_partial(mirror, False)  # already whole: nothing to remove
    assert not partial.is_partial(mirror)
    (Path(mirror.path) / partial.MARKER).mkdir()
    with pytest.raises(LocalStorageError):
        partial.set_partial(mirror, False)


# -- file:// copies ---------------------------------------------------------------------------


def test_file_copy_small_is_loose_and_a_whole_tree_is_fetched_once(tmp_path: Path) -> None:
    source, commit = _registry(tmp_path / "src.git")
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    fetcher = partial.ObjectFetcher(mirror, lambda exchange: pytest.fail("no wire exchange for a file:// remote"), source.path)
    d0 = _tree(source, commit, "d0")
    started = time.monotonic()
    assert fetcher.fetch([d0], below=None)
    assert time.monotonic() - started < 10  # it stops at the tree's bottom (it walked 2**30 empty levels: ~70 s)
    # d0, e, three blobs: stored loose, one copy
    assert _loose(mirror) == 5 and not _packs(mirror) and fetcher.requests == 1
    assert (Path(mirror.path) / partial.WHOLE).read_bytes() == d0 + b"\n"
    assert fetcher.fetch([d0], below=None) and fetcher.requests == 1  # noted whole: not copied again
    missing = b"0" * 40
    assert fetcher.fetch([missing]) and not mirror.objects.has(missing)  # left for the reader to name
    fetcher.close()
    fetcher.close()
    mirror.close()
    source.close()


def test_file_copy_over_the_loose_threshold_is_a_pack_and_big_copies_go_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, commit = _registry(tmp_path / "src.git")
    root = _tree(source, commit)
    monkeypatch.setattr(partial, "LOOSE_OBJECTS", 1)
    mirror = GitStore.init(str(tmp_path / "m1.git"), cache=True)
    fetcher = partial.ObjectFetcher(mirror, lambda exchange: None, source.path)
    assert fetcher.fetch([_tree(source, commit, "d0")], below=1)  # d0, e, and not e's blobs
    assert len(_packs(mirror)) == 1 and _loose(mirror) == 0
    assert mirror.objects.has(_tree(source, commit, "d0/e")) and not mirror.objects.has(_tree(source, commit, "d0/e/f0"))
    fetcher.close()

    monkeypatch.setattr(partial, "BATCH", 4)
    mirror = GitStore.init(str(tmp_path / "m2.git"), cache=True)
    fetcher = partial.ObjectFetcher(mirror, lambda exchange: None, source.path)
    assert fetcher.fetch([root], below=None)
    every = subprocess.run(
        ["git", "-C", source.path, "rev-list", "--objects", "--no-object-names", commit], capture_output=True, text=True, check=True
    )
    below_root = set(every.stdout.split()) - {commit}
    assert all(mirror.objects.has(s.encode()) for s in below_root)
    assert len(_packs(mirror)) == -(-len(below_root) // 4)  # 1 + 3 * (1 + 1 + 3) = 16 objects: 4 packs
    fetcher.close()


def test_whole_list_keeps_the_last_trees_and_a_failed_note_costs_only_a_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, commit = _registry(tmp_path / "src.git")
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    fetcher = partial.ObjectFetcher(mirror, lambda exchange: None, source.path)
    monkeypatch.setattr(partial, "WHOLE_KEPT", 2)
    trees = [_tree(source, commit, f"d{i}") for i in range(3)]
    for tree in trees:
        assert fetcher.fetch([tree], below=None)
    assert (Path(mirror.path) / partial.WHOLE).read_bytes().split() == trees[1:]
    assert fetcher.fetch([trees[0]], below=None) and fetcher.requests == 4  # trimmed: copied again

    (Path(mirror.path) / (partial.WHOLE + ".tmp")).mkdir()  # the note cannot be written
    root = _tree(source, commit)
    assert fetcher.fetch([root], below=None)
    assert root not in (Path(mirror.path) / partial.WHOLE).read_bytes().split()
    assert fetcher.fetch([root], below=None) and fetcher.requests == 6
    fetcher.close()


# -- over stock git http-backend ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served(git_http_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partial-edges")
    repo = git_http_server.create_repo(f"partial/edges-{tmp.name}")
    store, commit = _registry(repo.path)
    store.close()
    return repo, commit


def _filters(repo_path: Path, on: bool) -> None:
    subprocess.run(["git", "-C", str(repo_path), "config", "uploadpack.allowFilter", "true" if on else "false"], check=True)


def _http_fetcher(repo, mirror: GitStore) -> partial.ObjectFetcher:
    client, path = get_transport_and_path(repo.auth_url)
    return partial.ObjectFetcher(mirror, lambda exchange: exchange(client, path))


@pytest.mark.interop
def test_http_fetch_by_id_small_answers_loose_large_ones_packed(served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commit = served
    _filters(repo.path, True)
    source = GitStore.open(str(repo.path))
    d0, d1 = _tree(source, commit, "d0"), _tree(source, commit, "d1")
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    fetcher = _http_fetcher(repo, mirror)
    assert fetcher.fetch([d0], below=0)
    assert mirror.objects.has(d0) and not mirror.objects.has(_tree(source, commit, "d0/e"))
    assert _loose(mirror) == 1 and not _packs(mirror)

    monkeypatch.setattr(partial, "LOOSE_BYTES", 0)
    assert fetcher.fetch([d1], below=None)
    assert len(_packs(mirror)) == 1 and _loose(mirror) == 1
    assert mirror.objects.get(_tree(source, commit, "d1/e/f2")).as_raw_string() == FILES["d1/e/f2"]
    assert fetcher.requests == 2
    source.close()


@pytest.mark.interop
def test_http_server_refusing_an_id_turns_the_fetcher_off(served, tmp_path: Path) -> None:
    """git answers ``ERR ... not our ref`` for an id it does not hold: the caller falls back to fetching everything."""
    repo, _ = served
    _filters(repo.path, True)
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    fetcher = _http_fetcher(repo, mirror)
    assert fetcher.fetch([b"1" * 40]) is False
    assert fetcher.working is False and fetcher.requests == 0 and _loose(mirror) == 0


@pytest.mark.interop
@pytest.mark.parametrize("history", [False, True], ids=["tip", "history"])
def test_fetch_everything_brings_the_whole_tree_without_haves(served, tmp_path: Path, history: bool) -> None:
    repo, commit = served
    mirror = GitStore.init(str(tmp_path / "mirror.git"), cache=True)
    client, path = get_transport_and_path(repo.auth_url)
    partial.fetch_everything(client, path, mirror, commit.encode(), history=history)
    source = GitStore.open(str(repo.path))
    assert all(mirror.objects.has(_tree(source, commit, p)) for p in FILES)
    assert mirror.shallow() == (set() if history else {commit.encode()})
    count, objects = partial.pack_data(mirror, None, commit)
    assert count == 1 + 1 + 3 * (1 + 1 + 3) and len(list(objects)) == count
    source.close()


def test_a_commit_onto_itself_sends_only_the_commit_and_a_blob_tip_counts_as_filtered(tmp_path: Path) -> None:
    source, commit = _registry(tmp_path / "src.git")
    count, objects = partial.pack_data(source, commit, commit)
    assert count == 1 and [o.sha().hex() for o in objects] == [commit]
    blob = _tree(source, commit, "d0/e/f0")
    assert partial.came_filtered(source, blob)  # nothing below a blob tells otherwise
    assert not partial.came_filtered(source, commit.encode())  # the whole tree is here
    source.close()
