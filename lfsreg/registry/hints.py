"""Pull hints: the git ids of the files a pull of a tagged image reads, kept beside the name's tags.

A remote registry read in part (:mod:`lfsreg.git.partial`) learns the id of a file only from its
directory, so a cold pull walks the shard trees of the image's manifest, then of its config and
layer pointers: an exchange a level (docs/format.md). A name's hints file,
``repositories/<fan>/<name>/_pull``, lists for the images last pushed to the name the id of every
file a pull of the image reads. It comes in the exchange that brings the name's tag files; the ids
in it come in one more, and the shard trees are not read.

Hints are only a shortcut, written by whoever can push like everything else in the tree: a reader
takes a hinted file only when its content is what its path must hold (:func:`genuine`: a blob whose
sha256 is the digest in its path, a pointer naming that layer, a ``diffids/`` record that parses)
and reads the tree otherwise. A stale, damaged or hostile hints file costs the exchanges it would
have saved, nothing else; every byte is still checked against the digests above it.

The file is text, newest image first, at most :data:`MAX_IMAGES` lines::

    sha256:<image hex> <k><hex>:<git id> <k><hex>:<git id> ...

``<k>`` is ``b`` (``blobs/``), ``l`` (``layers/``) or ``d`` (``diffids/``). A chunked layer's
pointers are not listed (a pull lists their directory). Readers before this file skip it: files
in a name's directory are no tag and no name (lfsreg since its first format version).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import LfsregError
from ..formats import lfs_pointer
from ..git.objects import blob_id
from ..git.snapshot import Snapshot
from ..manifest import Index, Manifest, parse_manifest
from . import layout
from .closure import Closure, Needs, Reader

log = logging.getLogger(__name__)

FILE = "_pull"
#: Images a hints file keeps (the latest pushed): a pull of an older tag of a name reads the tree.
MAX_IMAGES = 16
#: Files listed for one image at most (an index of many platforms: its pull reads the tree).
MAX_ENTRIES = 256
#: A hints file larger than this is not read (MAX_IMAGES x MAX_ENTRIES lines of ~110 bytes fit).
MAX_BYTES = 512 * 1024
#: What an entry's letter names: ``r`` is the pointer a ``diffids/`` record names (read only with the record).
_KINDS = {"b": "blobs", "l": "layers", "d": "diffids", "r": "layers"}
_RECORDS = "dr"
_LINE = re.compile(r"sha256:([0-9a-f]{64})((?: [bldr][0-9a-f]{64}:[0-9a-f]{40})*)")

#: ``image digest -> {entry: git id}``, newest image first; an entry is ``<k><hex>`` (see the module docstring).
Images = dict[Digest, dict[str, bytes]]


def file_of(lay: layout.Layout, entry: str) -> str:
    """The path an entry names."""
    return lay.path(_KINDS[entry[0]], Digest("sha256", entry[1:]))


def path(lay: layout.Layout, name: str) -> str:
    """The hints file of an image name (``name`` must be validated)."""
    return f"{lay.name_dir(name)}/{FILE}"


def parse(data: bytes) -> Images:
    """The images of a hints file; lines that are not as :func:`encode` writes them are left out."""
    out: Images = {}
    if len(data) > MAX_BYTES:
        return out
    for line in data.decode("ascii", "replace").splitlines()[:MAX_IMAGES]:
        found = _LINE.fullmatch(line)
        if found is None:
            continue
        entries = found.group(2).split()[:MAX_ENTRIES]
        out.setdefault(Digest("sha256", found.group(1)), {e[:65]: e[66:].encode() for e in entries})
    return out


def encode(images: Images) -> bytes:
    """The hints file listing ``images`` (the first :data:`MAX_IMAGES`)."""
    kept = list(images.items())[:MAX_IMAGES]
    lines = [f"{digest}{''.join(f' {e}:{sha.decode()}' for e, sha in files.items())}\n" for digest, files in kept]
    return "".join(lines).encode()


def genuine(lay: layout.Layout, file: str, data: bytes) -> bool:
    """Whether ``data`` is content the file ``file`` can hold (see the module docstring)."""
    found = lay.digest_file(file)
    if found is None or file != lay.path(*found):
        return False
    kind, digest = found
    if kind == "blobs":
        return Digest.of_bytes(data) == digest
    if kind == "layers":
        obj = lfs_pointer.decode(data)
        return obj is not None and obj.oid == digest.hex
    try:
        layout.parse_diffid(data, digest, file)
    except LfsregError:
        return False
    return True


class Hints:
    """The hinted files of one view of a registry: what a pull found in its names' hints files, checked."""

    def __init__(self, lay: layout.Layout) -> None:
        self.layout = lay
        self.ids: dict[str, bytes] = {}  # path -> id of content the mirror holds and that is genuine
        self._learned: dict[str, bytes] = {}  # taken from hints files, not yet fetched and checked

    def learn(self, snapshot: Snapshot, name: str, digest: Digest, *, records: bool) -> None:
        """Take the hints of image ``digest`` from ``name``'s hints file (read from ``snapshot``), for :meth:`fetch`.

        ``records=False``: not the ``diffids/`` records and the pointers they name (a pull that reads none).
        """
        try:
            data = snapshot.read(path(self.layout, name))
        except LfsregError as exc:
            log.debug("%s: hints not read: %s", name, exc)
            return
        entries = parse(data).get(digest, {}) if data is not None else {}
        self._learned.update({file_of(self.layout, e): sha for e, sha in entries.items() if records or e[0] not in _RECORDS})

    def fetch(self, snapshot: Snapshot) -> None:
        """Fetch the files learned that the mirror lacks, in one exchange; keep those it then holds that are :func:`genuine`.

        The others are dropped: the tree is read for them.
        """
        learned, self._learned = self._learned, {}
        if learned and not snapshot.fetch_optional(learned.values()):
            log.debug("the server did not send every hinted file: reading the tree for the rest")
        for file, sha in learned.items():
            if snapshot.holds(sha) and self._genuine(snapshot, file, sha):
                self.ids[file] = sha
            else:
                log.debug("a hinted %s is absent or not what its path holds: reading the tree", file)

    def _genuine(self, snapshot: Snapshot, file: str, sha: bytes) -> bool:
        try:
            return genuine(self.layout, file, snapshot.blob(sha, file))
        except LfsregError:  # a damaged object
            return False

    def has(self, file: str) -> bool:
        """Whether ``file`` has checked hinted content (a read of it fetches nothing)."""
        return file in self.ids

    def read(self, snapshot: Snapshot, file: str) -> bytes | None:
        """The content of ``file``: its checked hinted content, else the tree's."""
        sha = self.ids.get(file)
        return snapshot.blob(sha, file) if sha is not None else snapshot.read(file)


def _entries(lay: layout.Layout, needs: Needs, read: Reader, id_of: Callable[[str], bytes | None]) -> dict[str, bytes]:
    """The entries of an image that ``needs`` those files: what a pull of it reads (``view.RegistryView.prefetch_pull``).

    The ``diffids/`` records of its layers, with the pointers they name, only when a manifest has
    a layer neither zstd nor uncompressed: a pull sizes those from their frames or their pointers.
    """
    found: dict[str, str] = {}  # entry -> path
    for file in needs.files:
        found["b" + file.rsplit("/", 1)[1]] = file
    for file in needs.layers:
        parsed = lay.digest_file(file)
        if parsed is not None and file == lay.layer_path(parsed[1]):  # a chunk's pointer: its directory is listed
            found["l" + parsed[1].hex] = file
    if any(_needs_records(read(file)) for file in needs.files):
        for diff_id in needs.diff_ids:
            file = lay.diffid_path(diff_id)
            data = read(file)
            if data is None:
                continue
            found["d" + diff_id.hex] = file
            with contextlib.suppress(LfsregError):  # a damaged record: the pull reads it and leaves it (view.stored_layer)
                stored = layout.parse_diffid(data, diff_id, file).desc.digest
                if "l" + stored.hex not in found:
                    found["r" + stored.hex] = lay.layer_path(stored)
    return {entry: sha for entry, file in found.items() if (sha := id_of(file)) is not None}


def needs_records(manifest: Manifest) -> bool:
    """Whether a pull reads the ``diffids/`` records of ``manifest``'s layers: one is neither zstd nor uncompressed.

    A zstd layer is sized from its frames, an uncompressed one by its pointer; any other from its record.
    """
    return not all(mt.layer_compression(d.media_type) in (None, "none", "zstd") for d in manifest.layers)


def _needs_records(data: bytes | None) -> bool:
    """Whether ``data`` is a manifest that :func:`needs_records`."""
    try:
        doc = parse_manifest(data or b"", "hints")
    except LfsregError:
        return False  # a config, a payload
    return not isinstance(doc, Index) and needs_records(doc)


def written(
    snapshot: Snapshot, lay: layout.Layout, label: str, tags: Iterable[tuple[str, Digest]], changes: Mapping[str, bytes | None]
) -> dict[str, bytes]:
    """The hints files of a commit that makes ``changes`` to ``snapshot``'s tree and tags each ``(name, digest)``.

    Each name's file gets a line for each image (newest first), before the lines it had for others.
    An image with a part missing gets none; a file without an id (a chunked layer's) is left out.
    """

    def read(file: str) -> bytes | None:
        return changes[file] if file in changes else snapshot.read(file)

    def id_of(file: str) -> bytes | None:
        if file in changes:
            data = changes[file]
            return blob_id(data) if data is not None else None
        return snapshot.file_id(file)

    closure = Closure(label, lay)
    names: dict[str, dict[Digest, None]] = {}
    for name, digest in tags:
        names.setdefault(name, {})[digest] = None
    out: dict[str, bytes] = {}
    for name, digests in names.items():
        new: Images = {}
        for digest in reversed(digests):  # the last tagged first
            try:
                entries = _entries(lay, closure.of(digest, read), read, id_of)
            except LfsregError as exc:
                log.debug("%s: no hints for %s: %s", label, digest, exc)
                continue
            if len(entries) <= MAX_ENTRIES:
                new[digest] = entries
        file = path(lay, name)
        old = read(file)
        kept = parse(old) if old is not None else {}
        out[file] = encode({**new, **{d: f for d, f in kept.items() if d not in new}})
    return out


def following(snapshot: Snapshot, lay: layout.Layout, label: str, changes: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
    """What the hints files need after ``changes`` to ``snapshot``'s tree, whoever wrote them (push, copy, a registry's PUT).

    A name whose tag files are written gets its hints (:func:`written`); one whose last tag goes
    loses its hints file, which would keep its directory alive.
    """
    gone: dict[str, set[str]] = {}  # a _tags directory -> its tags removed
    added: set[str] = set()  # _tags directories that get a tag
    tagged: list[tuple[str, Digest]] = []
    prefix = f"{layout.REPOSITORIES}/"
    for file, content in changes.items():
        above, _, tag = file.rpartition("/")
        if not above.endswith(f"/{layout.TAGS_DIR}") or not above.startswith(prefix):
            continue
        if content is None:
            gone.setdefault(above, set()).add(tag)
            continue
        added.add(above)
        name = lay.name_of(above[len(prefix) : -len(layout.TAGS_DIR) - 1])
        digest = layout.parse_tag(content)
        if name is not None and digest is not None:
            tagged.append((name, digest))
    out: dict[str, bytes | None] = {**written(snapshot, lay, label, tagged, changes)}
    for tags_dir, removed in gone.items():
        file = f"{tags_dir.rpartition('/')[0]}/{FILE}"
        left = tags_dir in added or bool({e for e, is_dir, _ in snapshot.listdir(tags_dir) if not is_dir} - removed)
        if not left and snapshot.exists(file):
            out[file] = None
    return out
