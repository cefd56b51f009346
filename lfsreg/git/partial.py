"""Partial fetch: a mirror that holds the tip commit and only the objects a command read.

A remote registry's mirror is fetched with git's partial-clone filter (``tree:1``: the commits
and their root trees, nothing below) when the server honours it (``uploadpack.allowFilter``,
protocol v2). Objects below are fetched when first read, by id, with protocol v2's ``fetch``
command (``want <id>`` of any object, which v2 allows without ``uploadpack.allowAnySHA1InWant``)
and the filter ``tree:0`` (exactly the objects asked for). :class:`ObjectFetcher` sends those
requests on the operation's client, without the refs advertisement each dulwich fetch starts
with: one request per batch of ids. A ``file://`` remote is read straight from its directory.

A mirror fetched that way carries the marker file :data:`MARKER`; a fetch of everything
(:meth:`ObjectFetcher` is not used, or the server ignored the filter) into such a mirror sends
no ``have`` lines, so the server sends every object instead of assuming the mirror holds what
its commits reference. Small answers are stored as loose objects (a pack per request would
leave thousands of packs in a long-lived cache); large ones as a pack.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from dulwich.client import GitClient, LocalGitClient
from dulwich.errors import GitProtocolError, HangupException
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.pack import PackData, PackInflater, full_unpacked_object
from dulwich.protocol import Protocol, pkt_line

from ..errors import ProtocolError
from .objects import storage_error
from .packstore import answer_file, store_pack
from .store import DIR_MODE, PARTIAL_MARKER, GitStore
from .transport import HttpClient, HttpStatus

log = logging.getLogger(__name__)

MARKER = PARTIAL_MARKER
#: The filter of a fetch of the registry branch: commits, root trees and what is in them (the
#: format marker, ``repositories``, and the three ``<kind>`` trees that hold only ``sha256``).
TIP_FILTER = b"tree:2"
#: Ids per request (each a 50-byte line, so 500 kB; a whole-registry listing asks for tens of thousands).
BATCH = 10000
#: Answers up to this size are stored as loose objects, larger ones (a listing's levels: thousands
#: of trees, slow to write and read one file each) as a pack.
LOOSE_BYTES = 64 * 1024
LOOSE_OBJECTS = 256  # the same for objects copied from a file:// remote
#: The file in a mirror listing trees fetched with everything under them (a whole-registry read's root).
WHOLE = "partial-whole"
WHOLE_KEPT = 64
#: The largest answer to a fetch by id held in memory (a whole registry's metadata is tens of MiB).
MAX_ANSWER = 1 << 30
_GITLINK = 0o160000

__all__ = [
    "MARKER", "ObjectFetcher", "TipFetch", "fetch_everything", "fetch_filtered", "is_partial", "new_objects", "pack_data", "set_partial",
]  # fmt: skip


def is_partial(mirror: GitStore) -> bool:
    """Whether ``mirror`` was fetched with a filter (objects below its commits may be missing)."""
    return mirror.partial()


def set_partial(mirror: GitStore, partial: bool) -> None:
    """Mark ``mirror`` as fetched with a filter, or as whole again."""
    path = os.path.join(mirror.path, MARKER)
    try:
        if partial:
            with open(path, "a", encoding="ascii"):
                pass
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    except OSError as exc:
        raise storage_error(exc, path) from None


def came_filtered(mirror: GitStore, tip: bytes) -> bool:
    """After a fetch of ``tip`` with :data:`TIP_FILTER`: ``False`` if the server sent the whole tree.

    The fetch brings two levels: a tree three levels down (``blobs/sha256``) shows whether
    more came. A tree too small to tell counts as filtered (every later read still works).
    """
    level = [tip]
    for _ in range(3):
        below: list[bytes] = []
        for sha in level:
            obj = mirror.objects.get(sha) if mirror.objects.has(sha) else None
            if isinstance(obj, Commit):
                below.append(bytes(obj.tree))
            elif isinstance(obj, Tree):
                below += [bytes(e.sha) for e in obj.iteritems() if e.mode == DIR_MODE]
        level = below[:1] if below else []
    return not level or not mirror.objects.has(level[0])


class _Unsupported(Exception):
    """The server cannot send objects by id (protocol v0/v1 without allowAnySHA1InWant, or an old server)."""


def _request(ids: Sequence[bytes], below: int | None, haves: Sequence[bytes] = ()) -> bytes:
    """A protocol v2 ``fetch`` command for ``ids`` and, under those that are trees, ``below`` levels (``None``: all).

    ``haves``: trees the mirror holds with everything under them; the server leaves out what
    is under them too (git passes them to ``pack-objects`` as ``--not``; one it lacks is ignored).
    """
    parts = [pkt_line(b"command=fetch\n"), b"0001", pkt_line(b"ofs-delta\n"), pkt_line(b"no-progress\n")]
    if below is not None:
        parts.append(pkt_line(b"filter tree:%d\n" % below))
    parts += [pkt_line(b"want " + i + b"\n") for i in ids]
    parts += [pkt_line(b"have " + i + b"\n") for i in haves]
    parts += [pkt_line(b"done\n"), b"0000"]
    return b"".join(parts)


def _read_pack(proto: Protocol, out: BinaryIO) -> None:
    """Write the pack of a v2 ``fetch`` answer (its ``packfile`` section, side-band demultiplexed) to ``out``."""
    while True:
        pkt = proto.read_pkt_line()
        if pkt is None:
            continue  # a delimiter between sections
        if pkt.startswith(b"ERR "):
            raise _Unsupported(pkt[4:].decode("utf-8", "replace").strip())
        if pkt.rstrip(b"\n") == b"packfile":
            break
        # shallow-info, wanted-refs, acknowledgments: not asked for, skipped to their end
    size = 0
    for pkt in proto.read_pkt_seq():
        channel, data = pkt[0], pkt[1:]
        if channel == 1:
            out.write(data)
            size += len(data)
            if size > MAX_ANSWER:  # trees and small files: a server sending more is not answering the request
                raise ProtocolError(f"the git server sent more than {MAX_ANSWER >> 20} MiB for a fetch of objects by id")
        elif channel == 3:
            raise GitProtocolError(data.decode("utf-8", "replace").strip())


def _fetch_http(client: Any, path: str, body: bytes, out: BinaryIO) -> None:
    url = client._get_url(path)
    client.protocol_version = 2  # dulwich sends Git-Protocol: version=2 with it
    resp, read = client._smart_request("git-upload-pack", url, body)
    _read_pack(Protocol(read, lambda data: None), out)
    # the body's end (chunked: its last chunk) read, urllib3 puts the connection back in its pool: the next
    # exchange skips a connection (and a TLS handshake); anything more is no answer to reuse it after
    with contextlib.suppress(GitProtocolError, OSError):
        if read(1):
            resp.close()


def _fetch_stream(client: GitClient, path: str, body: bytes, out: BinaryIO) -> None:
    """Over SSH (or any client that runs ``git-upload-pack``): one channel, its capabilities, one command."""
    from dulwich.client import negotiate_protocol_version, read_server_capabilities

    proto, _can_read, _stderr = client._connect(b"upload-pack", path, 2)  # type: ignore[attr-defined]
    with proto:
        if negotiate_protocol_version(proto) != 2:
            raise _Unsupported("the server speaks protocol v0 (no GIT_PROTOCOL)")
        caps = read_server_capabilities(proto.read_pkt_seq())
        if not any(c.startswith(b"fetch") and b"filter" in c for c in caps):
            raise _Unsupported("the server does not filter (uploadpack.allowFilter)")
        proto.write(body)
        _read_pack(proto, out)
        proto.write_pkt_line(None)


def _inflate(path: str) -> Iterator[Any]:
    pack = PackData(path, DEFAULT_OBJECT_FORMAT)
    try:
        yield from PackInflater.for_pack_data(pack)
    finally:
        pack.close()


class ObjectFetcher:
    """Fetches objects of the remote by id into ``mirror`` (see the module docstring).

    ``call`` runs an exchange with the remote's client (:meth:`lfsreg.git.remote.GitRemote._call`,
    with its retries and error mapping); ``source_dir`` is the repository of a ``file://``
    remote, read directly. :attr:`working` is ``False`` once the server could not answer a
    fetch by id: the caller then fetches everything.
    """

    def __init__(self, mirror: GitStore, call: Callable[[Callable[[GitClient, str], Any]], Any], source_dir: str | None = None) -> None:
        self.mirror = mirror
        self._call = call
        self._source_dir = source_dir
        self._source: GitStore | None = None
        self.working = True
        self.requests = 0  # exchanges made (for tests and the benchmark)

    def close(self) -> None:
        """Release the ``file://`` source's files."""
        if self._source is not None:
            self._source.close()
            self._source = None

    def fetch(self, ids: Iterable[bytes], below: int | None = 0, *, optional: bool = False) -> bool:
        """Fetch the objects ``ids`` that the mirror lacks, with ``below`` levels under trees.

        ``below=None``: trees with everything under them, once per tree (noted in :data:`WHOLE`);
        the server leaves out what the trees noted before hold (an earlier listing's ``repositories``:
        a listing after a push fetches what the push changed). ``False`` if the server cannot send
        objects by id. ``optional``: ids that may not exist (hints read from the registry's tree):
        ``False`` if the server refused them or left one out, and :attr:`working` stays as it was
        (a server says "not our ref" for an id it lacks as for one it will not send).
        """
        objects = self.mirror.objects
        whole = self._whole() if below is None else set()
        wanted = [i for i in dict.fromkeys(ids) if (i not in whole if below is None else not objects.has(i))]
        if not wanted or not self.working:
            return self.working
        haves = [t for t in whole if objects.has(t)]
        if self._source_dir is not None:
            self._copy_local(wanted, 1 << 30 if below is None else below)
            if below is None:
                self._note_whole(wanted)
            return True
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            with answer_file(os.path.join(self.mirror.objects.path, "pack")) as (answer, answer_path):

                def exchange(client: GitClient, path: str, ids: Sequence[bytes] = batch) -> None:
                    answer.seek(0)
                    answer.truncate()  # a retried exchange starts again
                    self._exchange(client, path, _request(ids, below, haves), answer)
                    answer.flush()

                try:
                    self._call(exchange)
                except _Unsupported as exc:
                    if optional:
                        log.debug("%s: the server did not send hinted objects (%s)", self.mirror.path, exc)
                        return False
                    log.info("%s: the server cannot send objects by id (%s): fetching the whole tree", self.mirror.path, exc)
                    self.working = False
                    return False
                self.requests += 1
                self._store(answer_path)
        missing = [i for i in wanted if not objects.has(i)]
        if missing and optional:
            return False
        if missing:
            raise ProtocolError(f"the git server did not send object {missing[0].decode()} when asked for it")
        if below is None:
            self._note_whole(wanted)
        return True

    def _whole(self) -> set[bytes]:
        try:
            with open(os.path.join(self.mirror.path, WHOLE), "rb") as f:
                return {line.strip() for line in f}
        except OSError:
            return set()

    def _note_whole(self, trees: Sequence[bytes]) -> None:
        """Note ``trees`` as held with everything under them (the last :data:`WHOLE_KEPT`; a lost note costs a fetch)."""
        path = os.path.join(self.mirror.path, WHOLE)
        kept = [*sorted(self._whole() - set(trees)), *trees][-WHOLE_KEPT:]
        try:
            with open(path + ".tmp", "wb") as f:
                f.write(b"".join(t + b"\n" for t in kept))
            os.replace(path + ".tmp", path)
        except OSError as exc:
            log.debug("%s: cannot note whole trees: %s", self.mirror.path, exc)

    def _exchange(self, client: GitClient, path: str, body: bytes, out: BinaryIO) -> None:
        if isinstance(client, LocalGitClient):
            raise _Unsupported("a local client")
        if hasattr(client, "_smart_request"):
            try:
                return _fetch_http(client, path, body, out)
            except (GitProtocolError, HangupException) as exc:
                if "not our ref" in str(exc) or "filter" in str(exc):
                    raise _Unsupported(str(exc)) from None
                raise
        return _fetch_stream(client, path, body, out)

    def _store(self, path: str) -> None:
        """Keep the answer in the file ``path``: small ones as loose objects, larger ones as a pack (:mod:`.packstore`)."""
        size = os.path.getsize(path)
        if not size:
            return
        objects = self.mirror.objects
        if size > LOOSE_BYTES:
            objects.fresh.clear()  # the last answer's only: a long-lived process (serve) keeps no more
            with objects.pack_writes():
                try:
                    if store_pack(os.path.dirname(path), path, self.mirror.path, objects.fresh):
                        return
                except OSError as exc:
                    raise storage_error(exc, path) from None
                store: Any = self.mirror.repo.object_store  # a thin pack: dulwich resolves it against the mirror
                with open(path, "rb") as f:
                    store.add_thin_pack(f.read, None)
            return
        for obj in _inflate(path):
            objects.add(obj)

    def _copy_local(self, ids: Sequence[bytes], below: int) -> None:
        if self._source is None:
            self._source = GitStore.open(self._source_dir or "")
        self.requests += 1
        level, found, packed = list(ids), [], False
        for depth in range(below + 1):
            if not level:
                break  # below=None asks for 2**30 levels: stop at the tree's bottom
            under: list[bytes] = []
            for sha in level:
                try:
                    obj = self._source.objects.get(sha)
                except KeyError:
                    continue  # named as missing by the read that wanted it
                found.append(obj)
                if len(found) == BATCH:  # a pack at a time: a whole registry's objects are not all held
                    self._add_pack(found)
                    found, packed = [], True
                if isinstance(obj, Tree) and depth < below:
                    under += [bytes(e.sha) for e in obj.iteritems() if e.mode != _GITLINK]
            level = under
        if packed or len(found) > LOOSE_OBJECTS:
            self._add_pack(found)
            return
        for obj in found:
            self.mirror.objects.add(obj)

    def _add_pack(self, objects: Sequence[Any]) -> None:
        if objects:
            store: Any = self.mirror.repo.object_store
            with self.mirror.objects.pack_writes():
                store.add_objects([(obj, None) for obj in objects])


class _NoHaves:
    """A graph walker that says the mirror has nothing (its commits may lack what they reference)."""

    def __init__(self) -> None:
        self.shallow: set[ObjectID] = set()

    def __next__(self) -> None:
        return None

    next = __next__

    def ack(self, sha: bytes) -> None:
        """Nothing to note: no ``have`` was sent."""

    def nak(self) -> None:
        """Nothing to note."""


class TipFetch:
    """How this command fetches a tip over HTTP: refs from one v0 GET, then a v2 fetch, until a server refuses that."""

    quick = True


def fetch_filtered(client: GitClient, path: str, repo: Any, wants: Callable[..., list[ObjectID]], depth: int | None, how: TipFetch) -> Any:
    """Fetch into ``repo`` (dulwich's fetch) with :data:`TIP_FILTER`, quiet about a server that ignores it (the caller says it).

    Over HTTP, with ``how.quick``: two requests (:attr:`lfsreg.git.transport.HttpClient.refs_in_v0`).
    A server that then refuses protocol v2 (``GIT_PROTOCOL`` not passed to ``git upload-pack``)
    is asked again in its own way, and so for the rest of the command (said once under ``-v``).
    """
    client._warn_filter_objects = lambda: None  # type: ignore[method-assign]
    if not (how.quick and isinstance(client, HttpClient)):
        return client.fetch(path, repo, determine_wants=wants, depth=depth, filter_spec=TIP_FILTER)
    client.refs_in_v0 = True
    try:
        return client.fetch(path, repo, determine_wants=wants, depth=depth, filter_spec=TIP_FILTER)
    except (GitProtocolError, HangupException, HttpStatus) as exc:  # e.g. empty (git) or 500 (dulwich's server)
        if not client.v0_refs:
            raise
        how.quick = False
        log.info("%s: the server did not answer a protocol v2 fetch (%s): reading its refs with ls-refs", path, exc)
    finally:
        client.refs_in_v0 = False
    return client.fetch(path, repo, determine_wants=wants, depth=depth, filter_spec=TIP_FILTER)


def fetch_everything(client: GitClient, path: str, mirror: GitStore, tip: bytes, *, history: bool) -> None:
    """Fetch ``tip`` with every object of its tree (``history``: of all its history) into ``mirror``, sending no ``have``."""
    store: Any = mirror.repo.object_store
    f, commit, abort = store.add_pack()
    try:
        result = client.fetch_pack(path, lambda refs, depth=None: [ObjectID(tip)], _NoHaves(), f.write, depth=None if history else 1)
    except BaseException:
        abort()
        raise
    commit()
    if history:  # every commit's parents are there now
        mirror.repo.update_shallow(None, {ObjectID(s) for s in mirror.shallow()})
    else:
        mirror.repo.update_shallow(result.new_shallow, result.new_unshallow)


def pack_data(mirror: GitStore, old: str | None, new: str) -> tuple[int, Iterator[Any]]:
    """What a push of ``new`` onto ``old`` sends, for dulwich's ``send_pack``: :func:`new_objects`, whole."""
    ids = list(new_objects(mirror, old, new))
    return len(ids), (full_unpacked_object(mirror.objects.get(i)) for i in ids)


def new_objects(mirror: GitStore, old: str | None, new: str) -> Iterator[ObjectID]:
    """The objects of commit ``new`` that its parent ``old`` lacks: the commit and the trees and blobs it changed.

    The walk descends only into trees whose id differs from the parent's at the same path, so
    it reads the trees along the changed paths (which building the commit read) and nothing else.
    """
    objects = mirror.objects
    commit = objects.get(new.encode())
    assert isinstance(commit, Commit)
    yield commit.id
    base: bytes | None = None
    if old is not None:
        parent = objects.get(old.encode())
        assert isinstance(parent, Commit)
        base = bytes(parent.tree)
    yield from _changed(mirror, base, bytes(commit.tree))


def _changed(mirror: GitStore, old: bytes | None, new: bytes) -> Iterator[ObjectID]:
    if old == new:
        return
    yield ObjectID(new)
    before: dict[bytes, tuple[int, bytes]] = {}
    if old is not None:
        tree = mirror.objects.get(old)
        assert isinstance(tree, Tree)
        before = {bytes(e.path): (e.mode, bytes(e.sha)) for e in tree.iteritems()}
    tree = mirror.objects.get(new)
    assert isinstance(tree, Tree)
    for entry in tree.iteritems():
        sha = bytes(entry.sha)
        prev = before.get(bytes(entry.path))
        if (prev is not None and prev[1] == sha) or entry.mode == _GITLINK:
            continue
        if entry.mode == DIR_MODE:
            yield from _changed(mirror, prev[1] if prev is not None and prev[0] == DIR_MODE else None, sha)
        else:
            yield ObjectID(sha)
