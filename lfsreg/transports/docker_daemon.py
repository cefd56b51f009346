"""The ``docker-daemon:`` transport: images in a Docker engine (Docker, or Podman's service).

As a source it is a :class:`lfsreg.image.StagingSource`. Opening it asks the engine for each
image's config digest and diff_ids (``inspect``), so an unknown image fails at once. When the
push prepares it and the registry already holds that config and every layer, nothing else is
asked of the engine: the manifests are built from the registry. Otherwise ``docker save`` is
streamed once through :func:`lfsreg.formats.docker_save.ingest_stream`, staging only the layers
the registry lacks, and those are handed over staged.

As a destination it streams a ``docker load`` tarball into the engine while it is written and
verified, without a temporary file.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, ImageNotFound, NotFoundError
from ..formats.docker_save import Ingested, images_of, ingest_stream, synthesize_manifest
from ..image import ArchiveImage, RegistryContents, Root
from ..layers import Compression, LayerStaging, PreparedLayer
from ..manifest import Descriptor
from ..reference import ImageRef
from .docker_archive import write_docker_archive
from .sinks import TarStreamSink

if TYPE_CHECKING:
    from .engine_client import EngineClient


def _client() -> EngineClient:
    from .engine_client import EngineClient  # requests is imported only when an engine is used

    return EngineClient()


def engine_names(ref: ImageRef) -> list[str]:
    """Names to look ``ref`` up by: as written, then as Docker (docker.io/…) and Podman (localhost/…) store it."""
    text = str(ref)
    out = [text, f"localhost/{text}", f"docker.io/{text}"]
    if "/" not in ref.name:
        out.append(f"docker.io/library/{text}")
    return out


def inspect(client: EngineClient, ref: ImageRef) -> tuple[str, dict[str, Any]]:
    """The engine's name for ``ref`` and its inspect document; :class:`ImageNotFound` if absent."""
    for name in engine_names(ref):
        try:
            return name, client.inspect(name)
        except NotFoundError:
            continue
    raise ImageNotFound(f"the Docker engine at {client.endpoint} has no image {ref}", hint="list its images with: docker images")


class DockerDaemonSource:
    """The images ``refs`` name in the engine: one source, so one ``docker save`` stream for all.

    One image asked for by several names is one root carrying every name; a name given by
    digest alone carries none (the push then needs ``--tag``).
    """

    def __init__(self, refs: list[ImageRef], client: EngineClient | None = None) -> None:
        self.client = client or _client()
        self.label = f"docker-daemon ({self.client.endpoint})"
        self._found = [(ref, *inspect(self.client, ref)) for ref in refs]
        # config digest -> (the refs asking for it, its diff_ids)
        self._wanted: dict[Digest, tuple[list[ImageRef], list[Digest]]] = {}
        for ref, _, info in self._found:
            diff_ids = [Digest.parse(d) for d in (info.get("RootFS") or {}).get("Layers") or []]
            self._wanted.setdefault(Digest.parse(str(info.get("Id", ""))), ([], diff_ids))[0].append(ref)
        self._roots: list[Root] = []
        self._blobs: dict[Digest, bytes] = {}
        self._staged: dict[Digest, PreparedLayer] = {}
        self._ingested: Ingested | None = None

    def _root(self, config: Digest, data: bytes, config_bytes: bytes) -> None:
        desc = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(data), len(data))
        self._blobs.update({desc.digest: data, config: config_bytes})
        names = tuple(dict.fromkeys(str(r) for r in self._wanted[config][0] if r.tag))
        self._roots.append(Root(desc, names))

    def prepare(self, registry: RegistryContents, staging: LayerStaging) -> None:
        """Build the images from the registry when it holds them all, else from one save stream."""
        present = {d for _, ids in self._wanted.values() for d in ids if registry.stored_layer(d) is not None}
        if all(registry.has_blob(config) and set(ids) <= present for config, (_, ids) in self._wanted.items()):
            for config, (_, ids) in self._wanted.items():  # read no layer at all
                config_bytes = registry.blob(config)
                layers = [Descriptor(mt.OCI_LAYER, d, registry.stored_layer(d).uncompressed_size or 0) for d in ids]  # type: ignore[union-attr]
                self._root(config, synthesize_manifest(config_bytes, layers), config_bytes)
            return
        # The engine spends a core producing the stream; one zstd worker keeps up and does not compete.
        how = LayerStaging(staging.staging, Compression(staging.compression.algorithm, staging.compression.level, 1), staging.progress)
        stream = self.client.save(sorted({name for _, name, _ in self._found}))
        try:
            self._ingested = ingest_stream(stream, self.label, present=present, how=how)
        finally:
            stream.close()
        for _, _, data, staged, config_bytes in images_of(self._ingested, how):
            config = Digest.of_bytes(config_bytes)
            if config in self._wanted and config not in self._blobs:
                self._root(config, data, config_bytes)
                self._staged.update(staged)
        missing = [str(r) for config, (refs, _) in self._wanted.items() if config not in self._blobs for r in refs]
        if missing:
            raise ImageNotFound(f"{self.label}: the engine's save stream did not contain {', '.join(missing)}")

    def roots(self) -> list[Root]:
        """One root per distinct image (after :meth:`prepare`)."""
        return list(self._roots)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A manifest or config; layers come staged (:meth:`staged_layer`), never from here."""
        try:
            return io.BytesIO(self._blobs[desc.digest])
        except KeyError:
            raise BlobNotFound(f"{self.label}: blob {desc.digest} was not in the engine's stream") from None

    def staged_layer(self, desc: Descriptor) -> PreparedLayer | None:
        """The layer staged from the save stream for ``desc``."""
        return self._staged.get(desc.digest)

    def close(self) -> None:
        """Remove staged files the push did not consume."""
        if self._ingested is not None:
            self._ingested.discard()


def load(client: EngineClient, images: list[ArchiveImage]) -> list[str]:
    """Stream a ``docker load`` tarball of ``images`` into the engine; verification errors abort it."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe:
            sink = TarStreamSink(pipe)
            try:
                write_docker_archive(sink, images)
                sink.commit()
            except BaseException as exc:  # reported by the caller; the truncated stream fails the load
                sink.abort()
                failure.append(exc)

    def body(f: BinaryIO) -> Iterator[bytes]:
        while chunk := f.read(1 << 20):
            yield chunk

    writer = threading.Thread(target=produce, name="lfsreg-load", daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        try:
            messages = client.load(body(pipe))
        except BaseException:
            writer.join()
            if failure:
                raise failure[0] from None
            raise
    writer.join()
    if failure:
        raise failure[0]
    return messages


class DockerDaemonDestination:
    """An :class:`lfsreg.image.ArchiveDestination`: ``docker load`` into the engine.

    Opening it pings the engine, so a missing engine fails before anything is fetched.
    """

    def __init__(self, client: EngineClient | None = None) -> None:
        self.client = client or _client()
        self.client.ping()
        self.label = f"docker-daemon ({self.client.endpoint})"

    def write_archive(self, images: list[ArchiveImage]) -> None:
        """Load ``images`` into the engine; a layer that fails verification aborts the load."""
        load(self.client, images)
