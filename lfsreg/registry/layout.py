r"""Paths of the registry format, version 1 (docs/format.md). Pure functions, no I/O.

::

    lfsreg.json                           format marker {"format": "lfsreg", "version": 1}
    .gitattributes                        layers/** filter=lfs diff=lfs merge=lfs -text
    blobs/sha256/<hh>/<hex>               manifests, indexes, configs: exact bytes
    layers/sha256/<hh>/<hex>              one LFS pointer per layer blob (oid == digest hex)
    diffids/sha256/<hh>/<hex>             the stored layer blob whose uncompressed digest is <hex>
    repositories/<name>/_tags/<tag>       "sha256:<hex>\n" of a manifest or index
"""

from __future__ import annotations

import json

from ..digest import Digest

MARKER = "lfsreg.json"
FORMAT_VERSION = 1
MARKER_BYTES = (json.dumps({"format": "lfsreg", "version": FORMAT_VERSION}, indent=2) + "\n").encode()
GITATTRIBUTES = ".gitattributes"
GITATTRIBUTES_BYTES = b"layers/** filter=lfs diff=lfs merge=lfs -text\n"
REPOSITORIES = "repositories"
TAGS_DIR = "_tags"


def _sharded(kind: str, digest: Digest) -> str:
    return f"{kind}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_path(digest: Digest) -> str:
    """Where a manifest, index or config lives."""
    return _sharded("blobs", digest)


def layer_path(digest: Digest) -> str:
    """Where a layer's LFS pointer lives."""
    return _sharded("layers", digest)


def diffid_path(diff_id: Digest) -> str:
    """Where the record of a stored layer with this uncompressed digest lives."""
    return _sharded("diffids", diff_id)


def tags_dir(name: str) -> str:
    """The directory of an image name's tags (``name`` must be validated)."""
    return f"{REPOSITORIES}/{name}/{TAGS_DIR}"


def tag_path(name: str, tag: str) -> str:
    """The file holding the digest a tag points at (``name``/``tag`` must be validated)."""
    return f"{tags_dir(name)}/{tag}"


def tag_content(digest: Digest) -> bytes:
    """The content of a tag file."""
    return f"{digest}\n".encode()
