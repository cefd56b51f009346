"""OCI and Docker media types, and what they say about a blob."""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_LAYOUT = "application/vnd.oci.layout.header.v1+json"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Configs of container images; any other config media type marks an OCI artifact (a Helm
# chart, a signature…) whose blobs are stored and copied as they are. "" = not declared.
IMAGE_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG, ""})
# The OCI name of a Docker media type, used when lfsreg rewrites a Docker manifest as OCI.
_OCI_EQUIVALENT = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_CONFIG: OCI_CONFIG}

# compression names used throughout lfsreg: "gzip", "zstd" or "none"
_LAYER_COMPRESSION = {
    OCI_LAYER: "none",
    DOCKER_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}
OCI_LAYER_FOR = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def is_index(media_type: str) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    """True for an OCI image manifest or a Docker schema 2 manifest."""
    return media_type in MANIFESTS


def is_image_config(media_type: str) -> bool:
    """True for a container image config (so the manifest's layers have diff_ids in it)."""
    return media_type in IMAGE_CONFIGS


def oci_equivalent(media_type: str) -> str:
    """The OCI media type for a Docker one (``media_type`` itself when there is none)."""
    return _OCI_EQUIVALENT.get(media_type, media_type)


def layer_compression(media_type: str) -> str | None:
    """Return ``"none"``, ``"gzip"`` or ``"zstd"`` for a layer media type, else ``None``."""
    return _LAYER_COMPRESSION.get(media_type)


# cosign's signature payload (simple signing, cosign specs/SIGNATURE_SPEC.md): the "layer" of a
# signature manifest. Such layers are a few hundred bytes and stored as git files under blobs/
# (docs/format.md, "Signatures"), not in LFS: `git show` reads what was signed, and checking a
# signature needs no LFS download.
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
GIT_LAYERS = frozenset({COSIGN_SIMPLESIGNING})


def stored_in_git(media_type: str) -> bool:
    """True for a layer media type stored under ``blobs/`` (a git file) rather than as an LFS object."""
    return media_type in GIT_LAYERS
