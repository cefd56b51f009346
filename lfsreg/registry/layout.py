r"""Paths and small files of the registry format, version 1 (docs/format.md). No I/O.

The one place that knows how tag files and ``diffids/`` records are encoded and decoded.

::

    lfsreg.json                           format marker {"format": "lfsreg", "version": 1}
    .gitattributes                        layers/** filter=lfs diff=lfs merge=lfs -text
    blobs/sha256/<hh>/<hex>               manifests, indexes, configs: exact bytes
    layers/sha256/<hh>/<hex>              one LFS pointer per layer blob (oid == digest hex)
    diffids/sha256/<hh>/<hex>             the stored layer blob whose uncompressed digest is <hex>
    repositories/<name>/_tags/<tag>       "sha256:<hex>\n" of a manifest or index
    repositories/<name>/_referrers/sha256/<subject hex>/<hex>
                                          descriptor (JSON) of a manifest whose subject is <subject>
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import InvalidImageError, InvalidReference
from ..manifest import Descriptor, json_int, load_json

MARKER = "lfsreg.json"
#: The version a registry is written with until it holds a chunked layer (then :data:`CHUNKED_VERSION`).
FORMAT_VERSION = 1
#: The first version with chunked layers (docs/format.md): older readers refuse it.
CHUNKED_VERSION = 2
#: The newest version this lfsreg reads.
KNOWN_VERSION = CHUNKED_VERSION


def marker_bytes(version: int) -> bytes:
    """The content of the format marker for ``version``."""
    return (json.dumps({"format": "lfsreg", "version": version}, indent=2) + "\n").encode()


MARKER_BYTES = marker_bytes(FORMAT_VERSION)
GITATTRIBUTES = ".gitattributes"
GITATTRIBUTES_BYTES = b"layers/** filter=lfs diff=lfs merge=lfs -text\n"
REPOSITORIES = "repositories"
TAGS_DIR = "_tags"
REFERRERS_DIR = "_referrers"


def _sharded(kind: str, digest: Digest) -> str:
    return f"{kind}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_path(digest: Digest) -> str:
    """Where a manifest, index or config lives."""
    return _sharded("blobs", digest)


def layer_path(digest: Digest) -> str:
    """Where a layer's LFS pointer lives."""
    return _sharded("layers", digest)


#: Digits of a chunk pointer's name: ``layers/sha256/<hh>/<hex>/000000`` and on.
CHUNK_DIGITS = 6


def chunk_path(digest: Digest, index: int) -> str:
    """Where the pointer of chunk ``index`` (from 0) of a chunked layer lives."""
    return f"{layer_path(digest)}/{index:0{CHUNK_DIGITS}d}"


def chunk_names(count: int) -> list[str]:
    """The names of the chunk pointers of a layer in ``count`` chunks, in order."""
    return [f"{i:0{CHUNK_DIGITS}d}" for i in range(count)]


def diffid_path(diff_id: Digest) -> str:
    """Where the record of a stored layer with this uncompressed digest lives."""
    return _sharded("diffids", diff_id)


def tags_dir(name: str) -> str:
    """The directory of an image name's tags (``name`` must be validated)."""
    return f"{REPOSITORIES}/{name}/{TAGS_DIR}"


def tag_path(name: str, tag: str) -> str:
    """The file holding the digest a tag points at (``name``/``tag`` must be validated)."""
    return f"{tags_dir(name)}/{tag}"


def referrers_dir(name: str, subject: Digest) -> str:
    """The directory of the records of manifests in ``name`` whose ``subject`` is ``subject``."""
    return f"{REPOSITORIES}/{name}/{REFERRERS_DIR}/{subject.algorithm}/{subject.hex}"


def referrer_path(name: str, subject: Digest, referrer: Digest) -> str:
    """The record of manifest ``referrer`` (its descriptor, JSON, as the referrers API lists it) under ``subject``."""
    return f"{referrers_dir(name, subject)}/{referrer.hex}"


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
