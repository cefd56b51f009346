"""The ``docker://`` transport: a registry speaking the OCI distribution API, as a source and a destination.

References are skopeo's: ``docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`` (no host, or a first
component without ``.``/``:`` that is not ``localhost``, means Docker Hub; its one-component
names get ``library/``). A source offers the one image the reference names, indexes whole, or
a platform subset ``--platform`` picks from an index (as crane's ``--platform`` does): one
platform is that platform's image manifest, stored as the source has it (its digest is the one
the source index lists for it); several (``--platform linux/amd64,linux/arm64``) are a new
index of the same media type listing only their descriptors, as the source lists them and in
its order, the index's other fields kept. That index is new bytes: its digest is not the source
index's (a pull by the source's index digest does not find it; the tag does), unless they are
all of the index's children: then it is the source index itself. Each platform asked for must
be in the index. A destination takes images as stored
(indexes whole): ``docker://HOST/NAME[:TAG]`` puts every image under NAME (with its own tag, or
TAG for a single image); ``docker://HOST`` keeps each image's own name.

Writing is all or nothing as far as a registry allows: every blob and child manifest of every
image is uploaded (only those the registry lacks: ``HEAD`` first, a cross-repository mount when
this write already put the blob in another repository of the host) before the first tag is
set, so a failure leaves no tag changed, only unreferenced blobs a registry garbage-collects.
The registry is asked what it holds before anything is read (:meth:`RegistryDestination.held`),
so a pull does not download from LFS the layers the destination has.
Credentials, TLS and retries: :mod:`lfsreg.distribution`.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from .. import mediatypes as mt
from ..credentials import Credential
from ..digest import Digest
from ..distribution.auth import DOCKER_HUB, DOCKER_HUB_API, AuthSources
from ..errors import ImageNotFound, InvalidReference, UsageError
from ..image import LayoutImage, Root
from ..manifest import Descriptor, Index, dump_json, parse_manifest
from ..reference import TAG_RE, validate_name, validate_tag

if TYPE_CHECKING:  # the client (requests) is imported only when a docker:// reference is opened
    from ..distribution.client import RegistryClient
    from ..distribution.session import RegistryAccess

log = logging.getLogger(__name__)
PREFIX = "docker://"


@dataclass(frozen=True)
class DockerAccess:
    """One side's (source or destination) way into ``docker://`` registries.

    Attributes:
        creds: given explicitly (``--src-creds``/``--dest-creds``): for this side's host only.
        insecure: plain HTTP to a non-loopback host (skopeo's ``--tls-verify=false``).
        platform: a source index is narrowed to this platform's image (``OS/ARCH[/VARIANT]``).
    """

    creds: Credential | None = field(default=None, repr=False)
    insecure: bool = False
    sources: AuthSources = field(default_factory=AuthSources)
    ca_bundle: str | None = None
    platform: str | None = None

    def for_host(self, host: str) -> RegistryAccess:
        """The access to ``host``: the explicit credential, else the one stored for that host."""
        from ..distribution.session import RegistryAccess
        from ..lfs.http import HttpSettings

        cred = self.creds or self.sources.lookup(host)
        return RegistryAccess(credential=cred, insecure=self.insecure, settings=HttpSettings(ca_bundle=self.ca_bundle))

    def client(self, host: str) -> RegistryClient:
        """A client of ``host`` with this access."""
        from ..distribution.client import RegistryClient

        return RegistryClient(host, self.for_host(host))


@dataclass(frozen=True)
class RemoteRef:
    """``docker://HOST/NAME[:TAG|@DIGEST]`` parsed: the API host, the repository, tag or digest."""

    host: str
    name: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def reference(self) -> str:
        """The tag or digest to ask the registry for (``latest`` when none was given)."""
        return str(self.digest) if self.digest else (self.tag or "latest")

    def __str__(self) -> str:
        return f"{PREFIX}{self.host}/{self.name}" + (f"@{self.digest}" if self.digest else f":{self.tag}" if self.tag else "")


def parse(text: str, *, name_required: bool = True) -> RemoteRef:
    """Parse what follows ``docker:`` (``//HOST/NAME[:TAG|@DIGEST]``); :class:`InvalidReference` names the fault."""
    if not text.startswith("//"):
        raise InvalidReference(f"docker:{text!r}: expected docker://HOST/NAME[:TAG]")
    rest = text[2:]
    rest, at, digest_text = rest.partition("@")
    first, slash, path = rest.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost"
    if not slash and looks_like_host and not name_required and not at:
        return RemoteRef(first.lower(), "")  # docker://HOST: the images keep their names
    if not slash or not looks_like_host:
        host, path = DOCKER_HUB_API, rest  # Docker Hub
        if "/" not in path.split(":")[0]:
            path = "library/" + path
    else:
        host = first.lower()
    if not host or any(c in host for c in "?#@ \\") or host.count(":") > 1:
        raise InvalidReference(f"docker:{text!r}: bad registry host {host!r}")
    tag = None
    name = path
    colon = path.rfind(":")
    if colon > path.rfind("/"):
        name, tag = path[:colon], path[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            validate_tag(tag)
    if not name:
        if name_required or at or tag:
            raise InvalidReference(f"docker:{text!r}: missing the repository name after {host}")
        return RemoteRef(host, "")
    validate_name(name)
    return RemoteRef(host, name, tag, Digest.parse(digest_text) if at else None)


def _familiar(ref: RemoteRef) -> str:
    if ref.host in (DOCKER_HUB, DOCKER_HUB_API) and ref.name.startswith("library/"):
        return ref.name[len("library/") :]
    return ref.name


class RegistrySource:
    """An :class:`lfsreg.image.ImageSource` over one image in a distribution registry."""

    def __init__(self, ref: RemoteRef, access: DockerAccess) -> None:
        self.ref = ref
        self.label = str(ref)
        self.client = access.client(ref.host)
        self._manifests: dict[Digest, bytes] = {}
        try:
            fetched = self.client.get_manifest(ref.name, ref.reference)
            self._manifests[fetched.digest] = fetched.data
            desc = Descriptor(fetched.media_type, fetched.digest, len(fetched.data))
            wanted = [p.strip() for p in (access.platform or "").split(",") if p.strip()]
            if wanted and mt.is_index(fetched.media_type):
                desc = self._platforms(fetched.data, fetched.media_type, wanted)
        except BaseException:
            self.client.close()
            raise
        names = (f"{_familiar(ref)}:{ref.tag or 'latest'}",) if not ref.digest else ()
        self._root = Root(desc, names, (ref.reference,))

    def _platforms(self, data: bytes, media_type: str, wanted: list[str]) -> Descriptor:
        """The one platform's descriptor, or a new index of several (see the module docstring)."""
        parsed = parse_manifest(data, self.label)
        assert isinstance(parsed, Index)
        picked: list[int] = []
        for platform in wanted:
            found = [i for i, c in enumerate(parsed.manifests) if c.platform() == platform or _variant_of(c, platform)]
            if not found:
                have = ", ".join(p for p in (c.platform() for c in parsed.manifests) if p) or "none"
                raise ImageNotFound(f"{self.label}: no image for platform {platform} (has: {have})")
            if found[0] not in picked:
                picked.append(found[0])
        if len(picked) == 1:
            return parsed.manifests[picked[0]]
        if len(picked) == len(parsed.manifests):
            return Descriptor(media_type, Digest.of_bytes(data), len(data))  # all of them: the index as it is
        subset = dump_json({**parsed.obj, "manifests": [parsed.obj["manifests"][i] for i in sorted(picked)]})
        digest = Digest.of_bytes(subset)
        self._manifests[digest] = subset
        return Descriptor(media_type, digest, len(subset))

    def roots(self) -> list[Root]:
        """The one image the reference names."""
        return [self._root]

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A manifest (kept from the fetch, or fetched by digest) or a blob stream; raw, unverified."""
        if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type):
            data = self._manifests.get(desc.digest)
            if data is None:
                data = self._manifests[desc.digest] = self.client.get_manifest(self.ref.name, str(desc.digest)).data
            return io.BytesIO(data)
        return self.client.open_blob(self.ref.name, desc.digest)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


def _variant_of(child: Descriptor, platform: str) -> bool:
    """``linux/arm`` asks for any ``linux/arm/VARIANT``."""
    return (child.platform() or "").startswith(platform + "/")


def open_source(text: str, access: DockerAccess) -> RegistrySource:
    """Open ``//HOST/NAME[:TAG|@DIGEST]`` (the manifest is fetched and verified now)."""
    return RegistrySource(parse(text), access)


def select(roots: list[Root], selector: str | None, label: str) -> list[Root]:
    """A registry reference names one image: it is selected."""
    return roots


class RegistryDestination:
    """An :class:`lfsreg.image.LayoutDestination` writing to a distribution registry (see the module docstring)."""

    def __init__(self, text: str, access: DockerAccess) -> None:
        self.target = parse(text, name_required=False)
        if self.target.digest is not None:
            raise InvalidReference(f"{self.target}: a destination takes a tag, not a digest")
        self.ref_name = self.target.tag
        self.label = str(self.target)
        self.client = access.client(self.target.host)
        self.uploaded = 0  # blobs sent (not found by HEAD, not mounted)
        self.skipped = 0  # blobs the registry already had
        self.mounted = 0
        self._held: dict[tuple[str, Digest], bool] | None = None  # what held() found, per repository and blob

    def _repository(self, name: str | None) -> str:
        repository = self.target.name or name
        if not repository:
            raise UsageError(f"{self.label}: name the repository (docker://HOST/NAME) for an image without a name")
        return validate_name(repository)

    def _targets(self, images: list[LayoutImage]) -> list[tuple[str, str | None, LayoutImage]]:
        """Each image once per name it goes to: ``(repository, tag, image)``."""
        return [(self._repository(name), tag, image) for image in images for name, tag in image.refs or ((None, None),)]

    def held(self, images: list[LayoutImage]) -> set[Digest]:
        """The blobs (not manifests) the registry holds in every repository they go to (:class:`lfsreg.image.HeldBlobs`).

        One ``HEAD`` per blob and repository; a blob ``HEAD`` found in another repository of
        this host is mounted from there (a mount writes no tag). Remembered for
        :meth:`write_layout`, which then neither asks again nor reads those blobs.
        """
        self.client.ping()
        status: dict[tuple[str, Digest], bool] = {}
        found: dict[Digest, str] = {}  # blob -> a repository of this host that holds it
        for repository, _, image in self._targets(images):
            for blob in image.blobs:
                desc = blob.desc
                key = (repository, desc.digest)
                if key in status or _is_manifest(desc) or desc.digest == image.root.digest:
                    continue
                if self.client.has_blob(repository, desc.digest, desc.size):
                    self.skipped += 1
                    status[key] = True
                elif (other := found.get(desc.digest)) and self.client.mount(repository, desc.digest, other):
                    self.mounted += 1
                    status[key] = True
                else:
                    status[key] = False
                if status[key]:
                    found.setdefault(desc.digest, repository)
        self._held = status
        missing = {digest for (_, digest), ok in status.items() if not ok}
        return {digest for _, digest in status} - missing

    def write_layout(self, images: list[LayoutImage]) -> None:
        """Upload what the registry lacks, child manifests by digest, then every tag (see the module docstring)."""
        try:
            self.client.ping()
            placed: dict[Digest, str] = {}  # blob -> a repository of this host that now holds it
            targets = self._targets(images)
            for repository, _, image in targets:
                self._send_blobs(repository, image, placed)
            for repository, tag, image in targets:
                root = next(b for b in image.blobs if b.desc.digest == image.root.digest)
                reader = root.opener()
                data = reader.read()
                reader.finish()
                self.client.put_manifest(repository, tag or str(image.root.digest), data, image.root.media_type)
        finally:
            self.client.close()

    def _send_blobs(self, repository: str, image: LayoutImage, placed: dict[Digest, str]) -> None:
        for blob in image.blobs:
            desc = blob.desc
            if desc.digest == image.root.digest:
                continue  # the root goes last, with its tag
            if _is_manifest(desc):
                reader = blob.opener()
                data = reader.read()
                reader.finish()
                self.client.put_manifest(repository, str(desc.digest), data, desc.media_type)
                continue
            known = self._held.get((repository, desc.digest)) if self._held is not None else None
            if known:
                pass  # held() found it (counted there)
            elif known is None and self.client.has_blob(repository, desc.digest, desc.size):
                self.skipped += 1
            elif (other := placed.get(desc.digest)) and other != repository and self.client.mount(repository, desc.digest, other):
                self.mounted += 1
            else:
                self.client.upload(repository, desc.digest, desc.size, blob.opener)
                self.uploaded += 1
            placed.setdefault(desc.digest, repository)


def _is_manifest(desc: Descriptor) -> bool:
    return mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)


def access(creds: str | None, tls_verify: bool, *, platform: str | None = None, what: str = "--src-creds") -> DockerAccess:
    """The :class:`DockerAccess` for one side from the command's options and the environment.

    ``creds`` (``USER:PASSWORD``) go to that side's registry host only; without them the
    Docker config / containers auth file / an opted-in credential helper are consulted per host.
    """
    import os

    from ..distribution.auth import parse_creds

    ca = os.environ.get("LFSREG_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE") or None
    return DockerAccess(
        creds=parse_creds(creds, what) if creds else None,
        insecure=not tls_verify,
        sources=AuthSources.from_environment(),
        ca_bundle=ca,
        platform=platform,
    )
