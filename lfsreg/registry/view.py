"""Reading the registry format from one git snapshot."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence

from ..digest import Digest
from ..errors import BlobNotFound, DigestMismatchError, ImageNotFound, LfsregError, NotARegistryError
from ..formats import lfs_pointer
from ..formats.lfs_pointer import LfsObject
from ..git.snapshot import Snapshot
from ..manifest import MAX_INDEX_DEPTH, Descriptor, Index, parse_manifest
from ..reference import ImageRef, validate_name
from . import hints, layout
from .layout import DiffIdRecord

log = logging.getLogger(__name__)


def _diff_ids(config: bytes) -> list[Digest]:
    """The ``rootfs.diff_ids`` of an image config, or none if it has none that parse (it is checked where it is read)."""
    try:
        ids = json.loads(config).get("rootfs", {}).get("diff_ids", [])
        return [Digest.parse(d) for d in ids if isinstance(d, str)] if isinstance(ids, list) else []
    except (ValueError, AttributeError, RecursionError, LfsregError):
        return []


#: The shard directories under which a pull or push reads (the tip's fetch brings their parents).
SHARDS = [f"{kind}/sha256" for kind in layout.KINDS]
_MAGIC = re.compile(r"[*?\[]")  # a glob's wildcards (fnmatch)


def _may_match(prefix: str, globs: Sequence[str]) -> bool:
    """Whether a name at or below the directory ``prefix`` can match one of ``globs`` (all when there are none).

    A name that matches starts with the glob's literal part (up to its first ``*``, ``?`` or ``[``),
    so one of the two is a prefix of the other.
    """
    if not globs:
        return True
    for glob in globs:
        literal = re.split(r"[*?\[]", glob, maxsplit=1)[0]
        if prefix.startswith(literal) or literal.startswith(prefix):
            return True
    return False


class RegistryView:
    """The registry as of one commit. Cheap to create; caches nothing across commits."""

    def __init__(self, snapshot: Snapshot, label: str) -> None:
        self.snapshot = snapshot
        self.label = label
        self._records: dict[Digest, DiffIdRecord | None] = {}  # diffids records read so far
        self._hints: hints.Hints | None = None  # what a pull's prefetch found in the names' hints files
        #: Where this registry keeps its digest-addressed files: its marker's version's (a new registry's: the newest).
        self.layout = layout.NEW
        if snapshot.commit is not None:
            marker = snapshot.read(layout.MARKER)
            if marker is None:
                raise NotARegistryError(
                    f"{label}: not an lfsreg registry (no {layout.MARKER} in its main branch)",
                    hint="use an empty repository or one created by `lfsreg init`",
                )
            version = layout.marker_version(marker)
            if version is None or version > layout.KNOWN_VERSION:
                shown = version if version is not None else layout.marker_field(marker)  # however wrong, for the one line
                raise NotARegistryError(
                    f"{label}: registry format version {shown!r} is not supported by this lfsreg",
                    hint="upgrade lfsreg",
                )
            self.layout = layout.layout_of(version)

    @property
    def empty(self) -> bool:
        """True before the first commit."""
        return self.snapshot.commit is None

    def resolve(self, ref: ImageRef) -> Digest:
        """The manifest or index digest ``ref`` names; :class:`ImageNotFound` if none."""
        if ref.digest is not None:
            if not self.has_blob(ref.digest):
                raise ImageNotFound(f"{self.label}: no manifest {ref.digest} for {ref.name}")
            return ref.digest
        assert ref.tag is not None
        # a partial mirror: the tag's directories a level an exchange, the name's with its _tags and their files
        self.prefetch_name(ref.name)
        data = self.snapshot.read(self.layout.tag_path(ref.name, ref.tag))
        if data is None:
            known = self.tags(ref.name)
            hint = (
                f"tags of {ref.name}: {', '.join(t for t, _ in known[:10])}" if known else f"list images with: lfsreg images {self.label}"
            )
            raise ImageNotFound(f"{self.label}: no image {ref}", hint=hint)
        digest = layout.parse_tag(data)
        if digest is None:
            raise NotARegistryError(f"{self.label}: tag file for {ref} is corrupt")
        return digest

    def has_blob(self, digest: Digest) -> bool:
        """True if a manifest, index or config with this digest is stored."""
        return self.snapshot.exists(self.layout.blob_path(digest))

    def read(self, path: str) -> bytes | None:
        """The file at ``path`` (``None``: none), as the tree holds it.

        Once :meth:`prefetch_pull` took a pull hint for it: the content the hint names, when that is
        what the path must hold (:mod:`.hints`).
        """
        return self.snapshot.read(path) if self._hints is None else self._hints.read(self.snapshot, path)

    def blob(self, digest: Digest) -> bytes:
        """The verified bytes of a manifest, index or config."""
        data = self.read(self.layout.blob_path(digest))
        if data is None:
            raise BlobNotFound(f"{self.label}: blob {digest} is missing")
        if Digest.of_bytes(data) != digest:
            raise DigestMismatchError(f"{self.label}: stored blob {digest} does not match its digest")
        return data

    def has_layer(self, digest: Digest) -> bool:
        """True if a pointer for this layer blob is in the tree."""
        return self.snapshot.exists(self.layout.layer_path(digest))

    def layer_object(self, desc: Descriptor) -> LfsObject:
        """The LFS object of a layer stored whole, checked against its pointer file in the tree.

        A chunked layer (docs/format.md) has no one object: use :meth:`layer_objects`.
        """
        objects = self.layer_objects(desc)
        if len(objects) != 1 or objects[0].oid != desc.digest.hex:
            raise DigestMismatchError(f"{self.label}: layer {desc.digest} is stored in {len(objects)} chunks, not as one object")
        return objects[0]

    def layer_objects(self, desc: Descriptor) -> list[LfsObject]:
        """The LFS objects holding a layer, in order: its one object, or its chunks.

        Checked against the tree: one pointer whose oid and size are the layer's, or chunk
        pointers ``000000``… without gaps whose sizes add up to the layer's (the chunks' own
        oids are their bytes' digests; the layer's digest is checked when they are read).
        """
        return self._objects(desc.digest, desc.size)

    def blob_objects(self, digest: Digest) -> list[LfsObject]:
        """:meth:`layer_objects` of a blob asked for by digest alone (a registry's blob ``GET``): any size."""
        return self._objects(digest, None)

    def _objects(self, digest: Digest, size: int | None) -> list[LfsObject]:
        path = self.layout.layer_path(digest)
        data = self.read(path)
        if data is not None:
            obj = lfs_pointer.decode(data)
            if obj is None or obj.oid != digest.hex or (size is not None and obj.size != size):
                against = "its digest" if size is None else "the manifest"
                raise DigestMismatchError(f"{self.label}: pointer for layer {digest} does not match {against}")
            return [obj]
        entries = sorted(self.snapshot.listdir(path))
        if not entries:
            raise BlobNotFound(f"{self.label}: layer {digest} has no pointer in the registry")
        if [name for name, _, _ in entries] != layout.chunk_names(len(entries)) or any(is_dir for _, is_dir, _ in entries):
            raise DigestMismatchError(f"{self.label}: chunks of layer {digest} are not named 000000, 000001, … without gaps")
        objects = []
        for name, _, sha in entries:
            obj = lfs_pointer.decode(self.snapshot.blob(sha, f"{path}/{name}"))
            if obj is None:
                raise DigestMismatchError(f"{self.label}: chunk {name} of layer {digest} is not an LFS pointer")
            objects.append(obj)
        total = sum(o.size for o in objects)
        if size is not None and total != size:
            raise DigestMismatchError(f"{self.label}: chunks of layer {digest} add up to {total} bytes, not {size}")
        return objects

    def stored_layer(self, diff_id: Digest) -> DiffIdRecord | None:
        """The stored blob for an uncompressed layer digest, if the registry holds one.

        Records are only an index (docs/format.md): a damaged one (see
        :func:`layout.parse_diffid`), or one whose blob has no matching pointer in the tree, is
        logged and treated as absent, so it costs deduplication and nothing else.
        """
        if diff_id in self._records:
            return self._records[diff_id]
        path = self.layout.diffid_path(diff_id)
        data = self.read(path)
        record = None
        if data is not None:
            try:
                record = layout.parse_diffid(data, diff_id, f"{self.label}: {path}")
                self.layer_objects(record.desc)  # the blob it names is in the tree, with that size
            except LfsregError as exc:
                log.warning("ignoring a damaged diffids record: %s", exc)
                record = None
        self._records[diff_id] = record
        return record

    def tag_dirs(self, globs: Sequence[str] = (), *, strays: list[str] | None = None) -> list[tuple[str, bytes]]:
        """``(name, id of its _tags directory)`` of every image name, sorted by name (see :meth:`tags_in`).

        With ``globs``, at least the names that match one. Directories are read a level at a time
        (one fetch per level from a partial mirror), and with ``globs`` only those under which a
        matching name can be. ``strays`` gets the path of each directory found where no read looks
        (format version 4: one that is not a fan-out directory among them, a ``_tags`` outside
        its name's bucket): what is in it is no image name's, for ``verify`` to say so.
        """
        lay = self.layout
        fans = lay.name_levels
        # names without wildcards are found in their own buckets (format version 4): the other buckets are not read
        buckets = {lay.name_fan(g) for g in globs} if globs and not any(_MAGIC.search(g) for g in globs) else None
        if fans and buckets is None and self.snapshot.fetches:  # every bucket: the fan-out and the namespaces in one exchange
            tops = [e for e, is_dir, _ in self.snapshot.listdir(layout.REPOSITORIES) if is_dir and lay.fan_entry(e)]
            self.snapshot.prefetch(more=[(f"{layout.REPOSITORIES}/{e}", fans) for e in tops])
        found: list[tuple[str, bytes]] = []
        level: list[tuple[str, bytes | None]] = [("", None)]
        depth = 0
        while level:
            self.snapshot.prefetch(ids=[sha for _, sha in level if sha is not None])
            below: list[tuple[str, bytes | None]] = []
            for prefix, sha in level:
                entries = self.snapshot.listdir(layout.REPOSITORIES) if sha is None else self.snapshot.tree_entries(sha)
                for entry, is_dir, child in entries:
                    path = f"{prefix}/{entry}" if prefix else entry
                    if depth < fans:  # the fan-out of the names' hashes: one hex digit a level
                        if is_dir and lay.fan_entry(entry) and (buckets is None or any(b.startswith(path) for b in buckets)):
                            below.append((path, child))
                        elif is_dir and strays is not None and not lay.fan_entry(entry):
                            strays.append(f"{layout.REPOSITORIES}/{path}")
                        continue
                    if not is_dir or (entry.startswith("_") and entry != layout.TAGS_DIR):
                        continue  # files, and records beside _tags (_referrers): no name component starts with "_"
                    if entry == layout.TAGS_DIR:
                        name = lay.name_of(prefix)
                        if name is not None:  # else in another name's bucket: not found by its path, so not a name
                            found.append((name, child))
                        elif strays is not None:
                            strays.append(f"{layout.REPOSITORIES}/{path}")
                    elif _may_match(path[fans * 2 :], globs):
                        below.append((path, child))
            level = below
            depth += 1
        return sorted(found)

    def names(self, globs: Sequence[str] = ()) -> Iterator[str]:
        """Every image name with at least one tag directory, sorted; with ``globs``, at least those that match one."""
        return iter([name for name, _ in self.tag_dirs(globs)])

    def prefetch_tags(self, names: Sequence[str]) -> None:
        """Fetch the tag files of ``names`` in two exchanges, if the snapshot is a partial mirror's."""
        if not self.snapshot.fetches:
            return
        dirs = [self.layout.tags_dir(n) for n in names]
        self.snapshot.prefetch(dirs, below=1)  # each _tags tree with its files
        self.snapshot.prefetch(ids=[sha for d in dirs for _, is_dir, sha in self.snapshot.listdir(d) if not is_dir])

    def prefetch_name(self, name: str) -> None:
        """Fetch the tag files of one name from a partial mirror: its directory with its ``_tags`` and their files, a level an exchange.

        ``repositories/scale/img1``: ``scale``, then ``img1`` with two levels under it (two exchanges; :meth:`prefetch_tags` takes three).
        From format version 4: the fan-out levels, the bucket with the names in it, then the name's (see :meth:`layout.Layout.name_reads`).
        """
        self.snapshot.prefetch(more=self.layout.name_reads(name))

    def prefetch_pull(self, refs: Sequence[ImageRef | Digest], *, records: bool = True) -> None:
        """Fetch what a pull of ``refs`` reads from a partial mirror: about five exchanges, sixteen without pull hints.

        The tags' directories (a name's with its ``_tags`` and their files, and its hints file; from
        format version 4 its fan-out levels and bucket first, see :meth:`layout.Layout.name_reads`)
        together with the shard directories every pull reads below; then, in one exchange, the files
        the hints name for the tags' images (:mod:`.hints`; those that are not what their paths hold
        are dropped). What no hint names is read an exchange per level: manifests (and an index's
        children), their configs with the layers' pointers, the ``diffids/`` records of the configs'
        layers: the shard levels and the file each (format version 3: four; 1 and 2: two).
        ``records=False``: no ``diffids/`` (a pull that keeps layers as stored reads none).
        What cannot be read is left to the reads.
        """
        if not self.snapshot.fetches:
            return
        tagged = [r for r in refs if isinstance(r, ImageRef) and r.digest is None]
        todo = [d for r in refs if (d := r if isinstance(r, Digest) else r.digest) is not None]
        try:
            shards = SHARDS if records else SHARDS[:2]
            names = [*(w for r in tagged for w in self.layout.name_reads(r.name)), *((hints.path(self.layout, r.name), 0) for r in tagged)]
            self.snapshot.prefetch(more=[*names, *((s, 0) for s in shards)])
            found = self._hints = hints.Hints(self.layout)
            for ref in tagged:
                assert ref.tag is not None
                data = self.snapshot.read(self.layout.tag_path(ref.name, ref.tag))
                digest = layout.parse_tag(data) if data is not None else None
                if digest is not None:
                    todo.append(digest)
                    found.learn(self.snapshot, ref.name, digest, records=records)
            found.fetch(self.snapshot)  # in one exchange; what is absent or not what its path holds is dropped
            self._prefetch_images(todo, layers=True, records=records)
        except LfsregError as exc:
            log.debug("%s: prefetching the pull stopped: %s", self.label, exc)

    def prefetch_files(self, paths: Iterable[str]) -> None:
        """Fetch the files ``paths`` and the trees along them from a partial mirror, a level an exchange.

        For a write (a push's change set): the trees it rebuilds and the files it compares, the
        shard directories with the first level that asks for anything. Absent files cost nothing.
        """
        if not self.snapshot.fetches:
            return
        paths = list(paths)
        self.snapshot.prefetch(more=[*((s, 0) for s in SHARDS), *((p, 0) for p in paths)])
        # a diffids record counts only with the pointer it names (stored_layer): those too, two more levels
        pointers = []
        for path in paths:
            found = self.layout.digest_file(path)
            if found is not None and found[0] == "diffids" and (data := self.snapshot.read(path)) is not None:  # in reach now, or absent
                with contextlib.suppress(LfsregError):
                    pointers.append(self.layout.layer_path(layout.parse_diffid(data, found[1], path).desc.digest))
        self.snapshot.prefetch(pointers)

    def _prefetch_images(self, digests: Sequence[Digest], *, layers: bool, records: bool) -> None:
        """Fetch the manifests and configs of ``digests`` (an index's children too), an exchange per level.

        ``layers``: the layers' pointers too, with the configs; ``records``: then the
        ``diffids/`` records of the configs' layers, unless every layer is zstd (a pull sizes those
        from their frames) or uncompressed: a record is read later only for a layer that needs it.
        """
        todo = list(dict.fromkeys(digests))
        paths: list[str] = []
        sized: set[Digest] = set()  # configs whose layers need no record: zstd (sized by its frames) or plain
        for _ in range(MAX_INDEX_DEPTH + 3):
            if not todo and not paths:
                return
            wanted = [*(self.layout.blob_path(d) for d in todo), *paths]
            self.snapshot.prefetch([p for p in wanted if self._hints is None or not self._hints.has(p)])
            below: list[Digest] = []
            paths = []
            for digest in todo:
                data = self.read(self.layout.blob_path(digest))
                if data is None:
                    continue
                try:
                    parsed = parse_manifest(data, str(digest))
                except LfsregError:
                    if records and digest not in sized:  # a config, or damaged
                        paths += [self.layout.diffid_path(d) for d in _diff_ids(data)]
                    continue
                if isinstance(parsed, Index):
                    below += [c.digest for c in parsed.manifests]
                else:
                    below.append(parsed.config.digest)
                    paths += [self.layout.layer_path(layer.digest) for layer in parsed.layers if layers]
                    if not hints.needs_records(parsed):
                        sized.add(parsed.config.digest)
            todo = list(dict.fromkeys(below))

    def prefetch_images(self, digests: Sequence[Digest]) -> None:
        """Fetch the manifests and configs of ``digests`` (and of an index's children), an exchange per level."""
        if self.snapshot.fetches:
            self._prefetch_images(digests, layers=False, records=False)

    def tags(self, name: str) -> list[tuple[str, Digest]]:
        """``(tag, digest)`` pairs of an image name, sorted by tag (unparsable tag files are left out).

        Raises the error of the first tag file that cannot be read (a missing or damaged git object).
        """
        out = []
        for tag, found in self.tag_entries(name):
            if isinstance(found, Digest):
                out.append((tag, found))
            elif not isinstance(found, NotARegistryError):  # unreadable, not merely unparsable
                raise found
        return out

    def tag_entries(self, name: str) -> list[tuple[str, Digest | LfsregError]]:
        """Every tag file of an image name, sorted by tag: its digest, or why it cannot be read.

        A tag file that does not parse gives :class:`NotARegistryError`; one whose git object
        is missing or damaged, what :class:`lfsreg.git.snapshot.Snapshot` raised. So one damaged
        tag does not hide the others.
        """
        validate_name(name)
        return self._tag_files(name, self.snapshot.listdir(self.layout.tags_dir(name)), {})

    def all_tag_entries(self) -> Iterator[tuple[str, list[tuple[str, Digest | LfsregError]] | LfsregError]]:
        """:meth:`tag_entries` of every name :meth:`names` lists, in that order, from one walk of the tree.

        A name that is not valid, or whose tag directory cannot be read, comes with that error
        instead of its tags. Tag files with the same content (tags of one image) are read once.
        """
        return iter(self.tags_in(self.tag_dirs()))

    def tags_in(self, dirs: list[tuple[str, bytes]]) -> list[tuple[str, list[tuple[str, Digest | LfsregError]] | LfsregError]]:
        """:meth:`all_tag_entries` of some of :meth:`tag_dirs`, in their order: it reads, and changes nothing."""
        read: dict[bytes, Digest | LfsregError] = {}
        out: list[tuple[str, list[tuple[str, Digest | LfsregError]] | LfsregError]] = []
        for name, sha in dirs:
            try:
                validate_name(name)
                entries = self.snapshot.tree_entries(sha)
            except LfsregError as exc:
                out.append((name, exc))
                continue
            out.append((name, self._tag_files(name, entries, read)))
        return out

    def _tag_files(
        self, name: str, entries: list[tuple[str, bool, bytes]], read: dict[bytes, Digest | LfsregError]
    ) -> list[tuple[str, Digest | LfsregError]]:
        out: list[tuple[str, Digest | LfsregError]] = []
        for tag, is_dir, sha in entries:
            if is_dir:
                continue
            found = read.get(sha)
            if found is None:
                try:
                    digest = layout.parse_tag(self.snapshot.blob(sha, self.layout.tag_path(name, tag)))
                except LfsregError as exc:
                    out.append((tag, exc))  # named by its path: not shared with other tags
                    continue
                if digest is None:
                    out.append((tag, NotARegistryError(f"{self.label}: tag file for {name}:{tag} is corrupt")))
                    continue
                found = read[sha] = digest
            out.append((tag, found))
        return sorted(out, key=lambda entry: entry[0])
