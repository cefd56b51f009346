"""The public API: a :class:`Registry` you push to, pull from and list.

The CLI is a thin shell over this module; Python programs embed it the same way::

    reg = lfsreg.Registry("/srv/images.git")
    reg.push(["docker-archive:app.tar"], tags=["acme/app:1.0"])
    reg.pull(["acme/app:1.0"], "docker-archive:/tmp/app.tar")
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .api_cost import CostMethods
from .api_maintain import MaintainMethods
from .api_retention import RetentionMethods
from .api_serve import ServeMethods
from .api_sign import SignMethods, load_public_keys, load_signing_key, write_signing_keypair
from .compression import ALGORITHMS as COMPRESSION_ALGORITHMS
from .compression import DEFAULT as DEFAULT_COMPRESSION
from .compression import check_algorithm
from .credentials import strip_userinfo
from .digest import Digest
from .errors import ImageNotFound, LfsregError, NotARegistryError, NotFoundError, UsageError
from .keys import DEFAULT_COMMENT as DEFAULT_KEY_COMMENT
from .keys import write_keypair
from .progress import ProgressCallback, no_progress
from .reference import ImageRef, parse_tagged, validate_name, validate_tag
from .registry import layout
from .registry.location import Backend, RemoteOptions, fresh_local_path, no_commit, open_location
from .registry.transaction import Publisher
from .registry.view import RegistryView
from .ssh.settings import SshSettings
from .ssh.url import is_ssh_location, parse_ssh_url
from .staging import discard_own_staging

if TYPE_CHECKING:
    from .describe import ImageSummary, UnreadableImage
    from .lfs.store import LfsStore
    from .ops.copy import CopyResult
    from .ops.gc import GcResult
    from .ops.history import RollbackResult, TagHistory
    from .ops.limits import PRESETS
    from .ops.listing import Listing
    from .ops.prune import PrunePolicy, PruneResult
    from .ops.push import PushResult
    from .ops.traffic import Traffic
    from .ops.usage import RegistryUsage
    from .ops.verify import VerifyReport
    from .signing.keys import PrivateKey

# Push, pull and the image transports, and the describe module, are imported by the methods
# that use them (PEP 562 for the names re-exported here): every command starts a new process,
# and `lfsreg init`, `tags` or `rm` need none of that code (nor zstandard).
_LAZY = {"ImageSummary": "describe", "UnreadableImage": "describe", "RollbackResult": "ops.history", "TagHistory": "ops.history"}
_LAZY.update({"CopyResult": "ops.copy", "VerifyReport": "ops.verify"})
_LAZY |= {"PRESETS": "ops.limits", "Traffic": "ops.traffic", "RegistryUsage": "ops.usage"}
_LAZY |= {"GcResult": "ops.gc", "PrunePolicy": "ops.prune", "PruneResult": "ops.prune"}


def __getattr__(name: str) -> object:
    """The names of :data:`_LAZY`, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __package__), name)
    globals()[name] = value
    return value


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One tag: the image name, the tag, and the manifest or index digest it points at."""

    name: str
    tag: str
    digest: Digest


class Registry(CostMethods, RetentionMethods, MaintainMethods, ServeMethods, SignMethods):
    """An lfsreg registry at ``location``: a path to a bare git repository, or a URL.

    Use it as a context manager (or call :meth:`close`) to release the repository's files.

    A path is read and written in place. A URL is treated as a remote: git objects are fetched
    into a mirror and pushed back, and layers are copied through the local cache
    (``$XDG_CACHE_HOME/lfsreg``), so a second pull of the same layers transfers nothing.

    Every method that opens the registry may raise, besides what it documents:
    :class:`UsageError` (a malformed location), :class:`NotFoundError`/``RepositoryNotFound``,
    :class:`NotARegistryError`, ``AuthenticationError``, ``PermissionDeniedError``,
    ``UnreachableError``, ``RetriableError`` (retries spent), ``ProtocolError`` and
    ``LocalStorageError`` (all from :mod:`lfsreg.errors`; the README lists when).
    """

    def __init__(self, location: str, *, options: RemoteOptions | None = None) -> None:
        self.location = location
        self.options = (options or RemoteOptions()).resolve()  # the environment, read once, here
        self.label = strip_userinfo(location)
        self._backend: Backend | None = None
        self._publisher_of: Publisher | None = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the repository's files; the object can be used again afterwards."""
        if self._backend is not None:
            self._backend.close()
            self._backend = self._publisher_of = None

    # -- plumbing -------------------------------------------------------------------------
    def _open(self, *, create: bool = False) -> tuple[Backend, Publisher]:
        if self._backend is None or self._publisher_of is None:
            self._backend = open_location(self.location, create=create, options=self.options)
            self._publisher_of = Publisher(self._backend)
        return self._backend, self._publisher_of

    def _publisher(self, *, create: bool = False) -> Publisher:
        return self._open(create=create)[1]

    def _lfs(self) -> LfsStore:
        return self._open()[0].lfs

    def view(self) -> RegistryView:
        """The registry as of its current commit."""
        publisher = self._publisher()
        return publisher.view()

    # -- commands -------------------------------------------------------------------------
    def init(self, *, format_version: int | None = None) -> str:
        """Create an empty registry (a bare repository whose first commit has the format marker).

        ``format_version``: one of ``layout.CREATABLE_VERSIONS`` (default: the newest; 1 and 3
        keep the layouts lfsreg before version 3 and 4 read, docs/format.md).

        Raises:
            UsageError: the location is a registry already, or the version is not one lfsreg creates.
        """
        if format_version is not None and format_version not in layout.CREATABLE_VERSIONS:
            shown = ", ".join(map(str, layout.CREATABLE_VERSIONS))
            raise UsageError(f"registry format version {format_version} cannot be created (choose {shown})")
        publisher = self._publisher(create=True)
        if not publisher.view().empty:
            raise UsageError(f"{self.label}: already a registry")
        marker = {} if format_version is None else {layout.MARKER: layout.marker_bytes(format_version)}
        commit = publisher.publish(lambda view: marker, "init lfsreg registry")
        return commit or ""

    def push(
        self,
        sources: Sequence[str],
        *,
        tags: Sequence[str] = (),
        compression: str = "zstd",
        level: int | None = None,
        jobs: int = 2,
        progress: ProgressCallback = no_progress,
        spool_dir: str | None = None,
        object_limit: int | None = None,
        dry_run: bool = False,
        src_creds: str | None = None,
        src_tls_verify: bool = True,
        platform: str | None = None,
        sign_key: PrivateKey | None = None,
    ) -> PushResult:
        """Push every image the ``sources`` select, in one commit.

        Name errors are raised before the registry is opened (or created); a first push that
        fails removes the repository it created, so a failed push leaves nothing behind.

        Before uploading it reports what the host lacks (progress action ``"estimate"``,
        ``PushResult.estimate``), and refuses to go over ``limits.storage``.

        Args:
            sources: skopeo-style references (``docker-archive:PATH[:NAME:TAG]``, ``oci:DIR[:REF]``…),
                or images in the Docker engine (``NAME:TAG`` or ``docker-daemon:NAME:TAG``).
            tags: ``NAME:TAG`` names replacing the sources' own; needs exactly one selected image.
            compression: ``zstd``, ``gzip`` or ``none`` for layers that arrive uncompressed.
            level: compression level (``None``: zstd 3, gzip 6).
            jobs: layers processed at once.
            progress: receives :class:`lfsreg.progress.ProgressEvent`s.
            spool_dir: where compressed tarballs are decompressed to (default: the temp dir).
            object_limit: store new layers larger than this many bytes as chunks of at most
                this size (docs/format.md); default: the registry's ``limits.object``, if any.
            dry_run: stage, verify and estimate only; upload and commit nothing.
            src_creds: ``USER:PASSWORD`` for ``docker://`` sources' registry (else the Docker config).
            src_tls_verify: ``False`` allows plain HTTP to a ``docker://`` source (loopback always may).
            platform: take only this platform's image from a ``docker://`` source's index; several,
                comma-separated, make a new index of just those (its digest is not the source's).
            sign_key: sign each pushed image's digest with this key, in the push's commit (cosign's format).

        Raises:
            InvalidReference: a source, a tag, or a digest given where a tag is needed.
            UsageError: an ambiguous bare name, ``tags`` for several images, an unnamed image.
            ImageNotFound: a selector the source lacks, an image the Docker engine lacks.
            InvalidImageError: a malformed or unsafe source (a FIFO, a link out of a layout…).
            CorruptContentError: bytes that do not match their digest, size or diff_id.
            BlobNotFound: a blob the source lacks, or an LFS object missing after upload.
            ConcurrentUpdateError: the registry kept moving under the commit.
            LimitExceededError: over ``limits.storage`` (nothing uploaded), the host's quota or object size.
        """
        from .layers import Compression, LayerStaging
        from .ops.push import PushOptions, push_images
        from .ops.selection import check_push_names, push_items
        from .transports import OpenOptions, docker_registry, open_sources, parse_source

        check_algorithm(compression)
        refs = [parse_source(s) for s in sources]
        renames = [parse_tagged(t) for t in tags]
        options = PushOptions(compression, level, jobs, progress, object_limit=object_limit, extra=self._push_signatures(sign_key))
        if platform and not any(r.transport == "docker" for r in refs):
            raise UsageError("--platform picks from a docker:// source's index; no source is docker://")
        remote = docker_registry.access(src_creds, src_tls_verify, platform=platform)
        opened = open_sources(refs, options=OpenOptions(spool_dir, source=remote))
        try:
            check_push_names(opened, renames)  # usage errors before the registry is opened, or created
            fresh = fresh_local_path(self.location) if self._backend is None else None
            try:
                publisher = self._publisher(create=True)
                lfs = self._lfs()
                view = publisher.view()  # first: a remote's LFS endpoint may come from its fetched .lfsconfig
                options = self._costed(options, publisher, view, dry_run)
                staging = LayerStaging(lambda: lfs.staging(), Compression(compression, level), progress)
                items = push_items(opened, renames, view, staging)
                result = push_images(publisher, view, lfs, items, options)
                if dry_run and fresh is not None:
                    self._undo_create(fresh)
                return result
            except BaseException:
                if fresh is not None:
                    self._undo_create(fresh)
                raise
        finally:
            for _, source in opened:
                source.close()

    def _undo_create(self, fresh: tuple[str, bool]) -> None:
        """Remove what a failed first push created at ``fresh`` (path, existed-as-empty-dir).

        Only while the repository has no commit: a concurrent push may have published meanwhile.
        """
        path, existed = fresh
        try:
            unpublished = self._backend is None or self.view().empty
        except LfsregError:
            # The registry could not be read through its location (e.g. the URL itself was the
            # problem): ask the repository on disk, which this push created, directly.
            unpublished = no_commit(path)
        finally:
            self.close()
        if not unpublished:
            return
        if not existed:
            shutil.rmtree(path, ignore_errors=True)
            return
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)

    def pull(
        self,
        images: Sequence[str],
        dest: str,
        *,
        platform: str | None = None,
        progress: ProgressCallback = no_progress,
        traffic: Traffic | None = None,
        dest_creds: str | None = None,
        dest_tls_verify: bool = True,
        verify_keys: Sequence[str] = (),
        skip_signatures: bool = False,
    ) -> list[tuple[ImageRef, Digest]]:
        """Write ``images`` (``NAME:TAG`` or ``NAME@sha256:…``) to ``dest``, verifying everything.

        ``dest`` is ``docker-archive:PATH``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``, or
        ``docker-daemon:`` to load the images straight into the Docker engine, or
        ``docker://HOST[/NAME[:TAG]]`` (a distribution registry; ``dest_creds`` ``USER:PASSWORD``
        for it, else the Docker config; ``dest_tls_verify=False`` allows plain HTTP). ``traffic``, if
        given, is filled with the bytes moved from the host and from the local cache.
        Signatures (``verify_keys``: PEM texts or files; the trust policy unless ``skip_signatures``)
        are checked before anything is written (``SignatureError``).

        Raises:
            InvalidReference: an image or destination reference.
            UsageError: ``oci:DIR:REF`` for several images, an artifact to a docker-archive.
            NotFoundError: the registry is empty; ``ImageNotFound``: no such tag, digest or platform.
            BlobNotFound, CorruptContentError: stored content missing or damaged (nothing written).
            InvalidImageError: a damaged ``index.json`` in an existing ``oci:`` destination.
            UnreachableError, PermissionDeniedError: the Docker engine, for ``docker-daemon:``.
        """
        from .ops.limits import budgeted
        from .ops.pull import pull_images
        from .registry.config import read_limits
        from .transports import OpenOptions, docker_registry, open_destination, parse_target

        refs = [ImageRef.parse(i) for i in images]
        remote = docker_registry.access(dest_creds, dest_tls_verify, what="--dest-creds")
        destination = open_destination(parse_target(dest), OpenOptions(dest=remote))
        publisher = self._publisher()
        lfs = self._lfs()
        view = publisher.view()
        _require_content(view)
        self._check_signatures(view, refs, verify_keys, skip_signatures)  # before anything is written
        progress = self._counted(traffic, view, progress)
        lfs = budgeted(lfs, read_limits(view).transfer, self.label)  # limits.transfer (docs/limits.md)
        return pull_images(view, lfs, refs, destination, platform=platform, progress=progress)

    def tags(self, name: str | None = None, tag_globs: Sequence[str] = ()) -> list[TagInfo]:
        """Tags of ``name`` (or of every image), filtered by glob patterns.

        Raises:
            InvalidReference: a malformed ``name``.
            ImageNotFound: no image of that name.
        """
        view = self.view()
        if not name:  # the whole registry: through the listing memo (ops/listing.py)
            listing = self._listing(view)
            try:
                found = [TagInfo(n, tag, digest) for n, tag, digest in listing.tags(tag_globs)]
            finally:
                listing.close()
            listing.save(walked=("names", "tags"))
            return found
        names = [validate_name(name)]
        view.prefetch_name(name)  # a remote read in part: the name's directory with its tag files, an exchange a level
        out = []
        for n in names:
            for tag, digest in view.tags(n):
                if not tag_globs or any(fnmatch.fnmatchcase(tag, g) for g in tag_globs):
                    out.append(TagInfo(n, tag, digest))
        if name and not out and not view.tags(name):
            raise ImageNotFound(f"{self.label}: no image named {name}")
        return out

    def _listing(self, view: RegistryView) -> Listing:
        from .ops.listing import Listing
        from .ops.usage import memo_file

        return Listing(view, memo_file(self.options.cache_dir, self._open()[0].git))

    def images(
        self, image_globs: Sequence[str] = (), tag_globs: Sequence[str] = (), *, unreadable: list[UnreadableImage] | None = None
    ) -> list[ImageSummary]:
        """One summary per tag, like ``docker images``.

        A tag whose tag file, manifest or config is missing or damaged raises its error, unless
        ``unreadable`` is given: then it is appended there and the listing goes on, so one
        damaged image does not hide the others.
        """
        listing = self._listing(self.view())
        try:
            found = listing.images(image_globs, tag_globs, unreadable=unreadable)
        finally:
            listing.close()
        listing.save(walked=() if image_globs else ("names", "tags") if tag_globs else ("names", "tags", "images"))
        return found

    def inspect(self, image: str) -> dict[str, object]:
        """Manifest, platforms, config summary and layers of one image, as a JSON-ready dict.

        Raises:
            InvalidReference: a malformed reference.
            ImageNotFound: no such image.
            BlobNotFound, CorruptContentError: a stored manifest or config missing or damaged.
        """
        from .describe import inspect_image

        ref = ImageRef.parse(image)
        view = self.view()
        view.prefetch_pull([ref])  # a remote read in part: the image's files (records too: sizes) by its pull hints, at once
        return inspect_image(view, ref, view.resolve(ref))

    def remove(self, images: Sequence[str]) -> list[str]:
        """Untag ``images`` (``NAME:TAG``) in one commit; blobs stay (history keeps them anyway).

        Raises:
            InvalidReference: a malformed reference; UsageError: a reference by digest.
            ImageNotFound: a tag that is not there (nothing is removed).
            ConcurrentUpdateError: the registry kept moving under the commit.
        """
        refs = [ImageRef.parse(i) for i in images]
        if any(r.tag is None for r in refs):
            raise UsageError("rm takes NAME:TAG references (untagging a digest makes no sense)")
        publisher = self._publisher()
        view = publisher.view()
        for ref in refs:
            view.resolve(ref)  # raises ImageNotFound before anything is written
        pairs = [(r.name, validate_tag(r.tag or "")) for r in refs]
        publisher.publish(lambda v: dict.fromkeys(v.layout.tag_path(n, t) for n, t in pairs), "rm " + ", ".join(map(str, refs)))
        return [str(r) for r in refs]


def _require_content(view: RegistryView) -> None:
    if view.empty:
        raise NotFoundError(f"{view.label}: the registry is empty", hint=f"push an image first: lfsreg push {view.label} SOURCE")


# Re-exported for the CLI, which uses nothing below this module: compression choices, SSH
# settings and key generation, and the SIGTERM clean-up of this process's staged files.
__all__ = [
    "COMPRESSION_ALGORITHMS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_KEY_COMMENT",
    "CopyResult",
    "GcResult",
    "ImageSummary",
    "UnreadableImage",
    "NotARegistryError",
    "PRESETS",
    "PrunePolicy",
    "PruneResult",
    "Registry",
    "RegistryUsage",
    "RemoteOptions",
    "RollbackResult",
    "SshSettings",
    "TagHistory",
    "TagInfo",
    "VerifyReport",
    "Traffic",
    "discard_own_staging",
    "is_ssh_location",
    "load_public_keys",
    "load_signing_key",
    "write_signing_keypair",
    "parse_ssh_url",
    "write_keypair",
]
