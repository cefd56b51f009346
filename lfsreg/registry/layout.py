r"""Paths and small files of the registry format, versions 1 to 4 (docs/format.md). No I/O.

The one place that computes the paths of digest-addressed files and of image names' directories
(:class:`Layout`, one per format version: every other module asks the registry's layout) and that
knows how tag files and ``diffids/`` records are encoded and decoded.

::

    lfsreg.json                           format marker {"format": "lfsreg", "version": 4}
    .gitattributes                        layers/** filter=lfs diff=lfs merge=lfs -text
    blobs/sha256/<shards>/<hex>           manifests, indexes, configs: exact bytes
    layers/sha256/<shards>/<hex>          one LFS pointer per layer blob (oid == digest hex)
    diffids/sha256/<shards>/<hex>         the stored layer blob whose uncompressed digest is <hex>
    <shards>                              version 3: <hex[0]>/<hex[1]>/<hex[2]>; versions 1 and 2: <hex[0:2]>
    repositories/<fan>/<name>/_tags/<tag> "sha256:<hex>\n" of a manifest or index
    repositories/<fan>/<name>/_referrers/sha256/<subject hex>/<hex>
                                          descriptor (JSON) of a manifest whose subject is <subject>
    <fan>                                 version 4: <h[0]>/<h[1]>/<h[2]> of h = sha256 hex of the name (UTF-8);
                                          versions 1 to 3: nothing (repositories/<name>/...)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import InvalidImageError, InvalidReference
from ..manifest import Descriptor, json_int, load_json

MARKER = "lfsreg.json"
#: The version a registry written by lfsreg before version 3 has until it holds a chunked layer (then :data:`CHUNKED_VERSION`).
FORMAT_VERSION = 1
#: The first version with chunked layers (docs/format.md): older readers refuse it.
CHUNKED_VERSION = 2
#: The first version whose digest paths are sharded three levels deep, one hex digit each (docs/format.md).
DEEP_VERSION = 3
#: The first version whose image names sit under a fan-out of their hash, three levels of one hex digit (docs/format.md).
NAMES_VERSION = 4
#: The version every registry created now gets (``lfsreg init``, the first push into an empty repository).
NEW_VERSION = NAMES_VERSION
#: The newest version this lfsreg reads.
KNOWN_VERSION = NAMES_VERSION
#: The versions ``lfsreg init --format-version`` creates: 1 and 3 for teams whose lfsreg predates version 3 or 4.
CREATABLE_VERSIONS = (FORMAT_VERSION, DEEP_VERSION, NEW_VERSION)


def marker_bytes(version: int) -> bytes:
    """The content of the format marker for ``version``."""
    return (json.dumps({"format": "lfsreg", "version": version}, indent=2) + "\n").encode()


def marker_field(data: bytes) -> object:
    """What a format marker names as its version, whatever it is (``None``: no JSON object)."""
    try:
        return json.loads(data).get("version")
    except (ValueError, AttributeError, RecursionError):  # the marker is content too
        return None


def marker_version(data: bytes) -> int | None:
    """The version a format marker names (``None``: not an integer, or not JSON)."""
    version = marker_field(data)
    return version if isinstance(version, int) and not isinstance(version, bool) else None


GITATTRIBUTES = ".gitattributes"
GITATTRIBUTES_BYTES = b"layers/** filter=lfs diff=lfs merge=lfs -text\n"
REPOSITORIES = "repositories"
TAGS_DIR = "_tags"
REFERRERS_DIR = "_referrers"
#: The directories that hold digest-addressed files, each as ``<kind>/sha256/<shards>/<hex>``.
KINDS = ("blobs", "layers", "diffids")
#: Digits of a chunk pointer's name: ``layers/sha256/<shards>/<hex>/000000`` and on.
CHUNK_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a registry of one format version keeps its digest-addressed files: the one place that computes those paths.

    ``widths``: the hex digits of each shard directory between ``<kind>/sha256`` and the file,
    ``(2,)`` for versions 1 and 2 (``blobs/sha256/ab/<hex>``), ``(1, 1, 1)`` from version 3
    (``blobs/sha256/a/b/c/<hex>``). From version 4 an image name's directory sits under three
    levels of one hex digit of the sha256 of the name (``repositories/7/3/e/scale/img1``;
    :meth:`name_dir`); before, directly under ``repositories``. A registry keeps its layout for
    ever; only version 1 becomes 2 (the same paths) with its first chunked layer.
    """

    version: int

    @property
    def widths(self) -> tuple[int, ...]:
        """The hex digits of each shard level, from the top."""
        return (2,) if self.version < DEEP_VERSION else (1, 1, 1)

    @property
    def marker(self) -> bytes:
        """The content of this version's format marker."""
        return marker_bytes(self.version)

    def chunked(self) -> Layout:
        """The layout once a chunked layer is written: version 1 becomes 2 (same paths), any later stays."""
        return self if self.version >= CHUNKED_VERSION else Layout(CHUNKED_VERSION)

    def chunked_marker(self) -> dict[str, bytes]:
        """The marker change of a commit that writes a chunked layer: none, or version 1's raised to 2."""
        after = self.chunked()
        return {} if after == self else {MARKER: after.marker}

    def shards(self, hexpart: str) -> list[str]:
        """The shard directory names of a hex digest, from the top (``["ab"]``, or ``["a", "b", "c"]``)."""
        out, at = [], 0
        for width in self.widths:
            out.append(hexpart[at : at + width])
            at += width
        return out

    def shard_dir(self, kind: str, hexpart: str, algorithm: str = "sha256") -> str:
        """The directory holding ``<kind>``'s file of a hex digest (``blobs/sha256/a/b/c``): :meth:`shards` joined.

        Spelled out per layout: walks of a whole registry call it for every file (90,000 at 30,000 images).
        """
        if self.version >= DEEP_VERSION:
            return f"{kind}/{algorithm}/{hexpart[0]}/{hexpart[1]}/{hexpart[2]}"
        return f"{kind}/{algorithm}/{hexpart[:2]}"

    def shard_dirs(self, kind: str, hexpart: str, algorithm: str = "sha256") -> list[str]:
        """Every directory from ``<kind>/<algorithm>`` down to :meth:`shard_dir`, top first."""
        out = [f"{kind}/{algorithm}"]
        for shard in self.shards(hexpart):
            out.append(f"{out[-1]}/{shard}")
        return out

    def path(self, kind: str, digest: Digest) -> str:
        """The file of ``digest`` under ``kind`` (one of :data:`KINDS`)."""
        return f"{self.shard_dir(kind, digest.hex, digest.algorithm)}/{digest.hex}"

    def hex_path(self, kind: str, hexpart: str) -> str:
        """:meth:`path` of a sha256 digest given by its hex."""
        return f"{self.shard_dir(kind, hexpart)}/{hexpart}"

    def blob_path(self, digest: Digest) -> str:
        """Where a manifest, index or config lives."""
        return self.path("blobs", digest)

    def layer_path(self, digest: Digest) -> str:
        """Where a layer's LFS pointer lives (or, for a chunked layer, the directory of its chunks' pointers)."""
        return self.path("layers", digest)

    def chunk_path(self, digest: Digest, index: int) -> str:
        """Where the pointer of chunk ``index`` (from 0) of a chunked layer lives."""
        return f"{self.layer_path(digest)}/{index:0{CHUNK_DIGITS}d}"

    def diffid_path(self, diff_id: Digest) -> str:
        """Where the record of a stored layer with this uncompressed digest lives."""
        return self.path("diffids", diff_id)

    @property
    def fanned(self) -> bool:
        """Whether image names sit under a fan-out of their hash (version 4 on)."""
        return self.version >= NAMES_VERSION

    @property
    def name_levels(self) -> int:
        """The fan-out directories between ``repositories`` and a name's first component (3, or 0 before version 4)."""
        return NAME_LEVELS if self.version >= NAMES_VERSION else 0

    def name_fan(self, name: str) -> str:
        """The fan-out directories of an image name, ``"7/3/e"`` (``""`` before version 4)."""
        if self.version < NAMES_VERSION:
            return ""
        h = hashlib.sha256(name.encode()).hexdigest()
        return f"{h[0]}/{h[1]}/{h[2]}"

    def name_bucket(self, name: str) -> str:
        """The directory holding a name's first component: ``repositories/7/3/e`` (``repositories`` before version 4)."""
        fan = self.name_fan(name)
        return f"{REPOSITORIES}/{fan}" if fan else REPOSITORIES

    def name_dir(self, name: str) -> str:
        """The directory of an image name (``name`` must be validated): ``repositories/<fan>/<name>``."""
        return f"{self.name_bucket(name)}/{name}"

    def tags_dir(self, name: str) -> str:
        """The directory of an image name's tags (``name`` must be validated)."""
        return f"{self.name_dir(name)}/{TAGS_DIR}"

    def tag_path(self, name: str, tag: str) -> str:
        """The file holding the digest a tag points at (``name``/``tag`` must be validated)."""
        return f"{self.tags_dir(name)}/{tag}"

    def referrers_base(self, name: str) -> str:
        """The directory of every referrer record of ``name``: ``<name dir>/_referrers/sha256``."""
        return f"{self.name_dir(name)}/{REFERRERS_DIR}/sha256"

    def referrers_dir(self, name: str, subject: Digest) -> str:
        """The directory of the records of manifests in ``name`` whose ``subject`` is ``subject``."""
        return f"{self.name_dir(name)}/{REFERRERS_DIR}/{subject.algorithm}/{subject.hex}"

    def referrer_path(self, name: str, subject: Digest, referrer: Digest) -> str:
        """The record of manifest ``referrer`` (its descriptor, JSON, as the referrers API lists it) under ``subject``."""
        return f"{self.referrers_dir(name, subject)}/{referrer.hex}"

    def name_reads(self, name: str) -> list[tuple[str, int]]:
        """What reading an image name's tags fetches from a partial mirror: ``(path, levels under it)``, in order.

        Before version 4: the name's directory with two levels under it (its ``_tags`` with their
        files). From version 4: the name's bucket with the trees down to the name's directory
        (``repositories/7/3/e`` with ``scale`` and ``scale/img1``, and the few neighbours in that
        bucket: about 7 at 30,000 names, a tree entry each), then its ``_tags`` with their files:
        two exchanges below the fan-out levels instead of one a component of the name.
        """
        if self.version < NAMES_VERSION:
            return [(self.name_dir(name), 2)]
        return [(self.name_bucket(name), name.count("/") + 1), (self.tags_dir(name), 1)]

    def name_of(self, below: str) -> str | None:
        """The image name whose directory is ``repositories/<below>`` (``None``: none is kept there).

        Before version 4, ``below`` itself; from version 4, ``below`` without its fan-out, when
        that fan-out is the name's own (a name elsewhere is not found by its path, so it is not one).
        """
        if self.version < NAMES_VERSION:
            return below
        name = below[6:]
        if len(below) < 7 or below[5] != "/" or self.name_fan(name) != below[:5]:
            return None
        return name

    def fan_entry(self, entry: str) -> bool:
        """Whether ``entry`` can be one fan-out directory of a name (one lower-case hex digit)."""
        return len(entry) == 1 and entry in _HEXDIGITS

    def digest_file(self, path: str) -> tuple[str, Digest] | None:
        """``(kind, digest)`` of a path this layout gives a digest-addressed file (a chunk: its layer), else ``None``."""
        parts = path.split("/")
        depth = 2 + len(self.widths)
        if len(parts) not in (depth + 1, depth + 2) or parts[0] not in KINDS or parts[1] != "sha256":
            return None
        hexpart = parts[depth]
        if not _HEX.fullmatch(hexpart) or parts[2:depth] != self.shards(hexpart):
            return None
        if len(parts) == depth + 2 and (parts[0] != "layers" or not _CHUNK.fullmatch(parts[-1])):
            return None
        return parts[0], Digest("sha256", hexpart)


_HEX = re.compile(r"[0-9a-f]{64}")
_HEXDIGITS = frozenset("0123456789abcdef")
#: Fan-out levels of image names from version 4 (one hex digit each: 4,096 directories, docs/format.md).
NAME_LEVELS = 3
_CHUNK = re.compile(rf"[0-9]{{{CHUNK_DIGITS}}}")

#: The layout of every registry created now.
NEW = Layout(NEW_VERSION)
#: The layout of a version 1 registry (lfsreg before version 3; 2 has the same paths).
V1 = Layout(FORMAT_VERSION)
#: The layout of a version 3 registry (lfsreg before version 4).
V3 = Layout(DEEP_VERSION)


def layout_of(version: int) -> Layout:
    """The layout of a registry whose marker names ``version`` (at most :data:`KNOWN_VERSION`)."""
    return NEW if version == NEW_VERSION else Layout(version)


def of_marker(data: bytes | None) -> Layout:
    """The layout of a tree whose format marker is ``data``, for walks of history (the branch's tip is checked by its view).

    A tree without a readable marker (not a registry's, or damaged) is read as version 1: every
    registry of a later version has its marker from its first commit on.
    """
    version = marker_version(data) if data is not None else None
    return layout_of(version) if version is not None and FORMAT_VERSION <= version <= KNOWN_VERSION else V1


def chunk_names(count: int) -> list[str]:
    """The names of the chunk pointers of a layer in ``count`` chunks, in order."""
    return [f"{i:0{CHUNK_DIGITS}d}" for i in range(count)]


def tag_content(digest: Digest) -> bytes:
    """The content of a tag file."""
    return f"{digest}\n".encode()


_TAG_FILE = re.compile(rb"sha256:([a-f0-9]{64})\n")


def parse_tag(data: bytes) -> Digest | None:
    """The digest a tag file holds, or ``None`` if the file is damaged."""
    exact = _TAG_FILE.fullmatch(data)  # as lfsreg writes it: no decoding, no second check of the hex
    if exact is not None:
        return Digest("sha256", exact.group(1).decode())
    try:
        return Digest.parse(data.decode().strip())
    except (UnicodeDecodeError, InvalidReference):
        return None


@dataclass(frozen=True, slots=True)
class DiffIdRecord:
    """A ``diffids/`` record: the stored layer blob for an uncompressed digest, and its size.

    Records are only an index (docs/format.md): a damaged one costs deduplication, nothing else.
    """

    desc: Descriptor
    uncompressed_size: int | None


def diffid_content(record: DiffIdRecord) -> bytes:
    """The content of a ``diffids/`` record."""
    obj = {**record.desc.to_json(), "uncompressedSize": record.uncompressed_size}
    return json.dumps(obj, indent=1).encode() + b"\n"


def parse_diffid(data: bytes, diff_id: Digest, what: str) -> DiffIdRecord:
    """Decode the ``diffids/`` record of ``diff_id``; :class:`InvalidImageError` if it is damaged.

    A record is a descriptor of a layer blob (a layer media type, an integer size) plus an
    optional integer ``uncompressedSize``; for an uncompressed blob both must agree with
    ``diff_id`` itself (its digest is the diff_id, its size the uncompressed size).
    """
    obj = load_json(data, what)
    desc = Descriptor.from_json(obj, what)
    usize = obj.get("uncompressedSize")
    if usize is not None:
        usize = json_int(usize, f"{what}: uncompressedSize")
    compression = mt.layer_compression(desc.media_type)
    if compression is None:
        raise InvalidImageError(f"{what}: {desc.media_type!r} is not a layer media type")
    if compression == "none" and (desc.digest != diff_id or usize not in (None, desc.size)):
        raise InvalidImageError(f"{what}: uncompressed blob {desc.digest} ({desc.size} bytes) is not the layer itself")
    return DiffIdRecord(desc, usize)
