"""Images in a Docker engine: push them from it, load pulled images into it.

Push asks the engine for each image's config digest and diff_ids first (``inspect``); when the
registry already holds that config and every layer, nothing else is asked of the engine.
Otherwise ``docker save`` is streamed once through :mod:`lfsreg.ops.ingest`, staging only the
layers the registry lacks. Load streams a ``docker load`` tarball into the engine while it is
written and verified, without a temporary file.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import BlobNotFound, ImageNotFound
from ..image import Root
from ..layers import Compression, StoredLayer
from ..lfs.store import LfsStore
from ..manifest import Descriptor
from ..ops.ingest import Ingested, images_of, ingest_stream
from ..ops.push import PushItem, PushOptions
from ..reference import ImageRef
from ..registry.view import RegistryView
from .docker_archive import synthesize_manifest
from .engine_client import EngineClient
from .sinks import ArchiveImage, TarStreamSink, write_docker_archive

log = logging.getLogger(__name__)


class MemorySource:
    """An :class:`lfsreg.image.ImageSource` of manifests and configs held in memory."""

    def __init__(self, label: str, root: Root, blobs: dict[Digest, bytes]) -> None:
        self.label = label
        self._roots = [root]
        self._blobs = blobs

    def roots(self) -> list[Root]:
        """The one image."""
        return list(self._roots)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A manifest or config; layers come pre-staged, never from here."""
        try:
            return io.BytesIO(self._blobs[desc.digest])
        except KeyError:
            raise BlobNotFound(f"{self.label}: blob {desc.digest} was not in the engine's stream") from None

    def close(self) -> None:
        """Nothing to release."""


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
        except ImageNotFound:
            continue
    raise ImageNotFound(f"the Docker engine at {client.endpoint} has no image {ref}", hint="list its images with: docker images")


@dataclass
class EnginePush:
    """Push items prepared from an engine, with their staged layers; ``discard()`` afterwards."""

    items: list[PushItem]
    prestaged: dict[Digest, StoredLayer]
    ingested: Ingested | None = None

    def discard(self) -> None:
        """Remove staged files the push did not consume."""
        if self.ingested is not None:
            self.ingested.discard()


def _targets(refs: list[ImageRef]) -> tuple[tuple[str, str], ...]:
    return tuple(dict.fromkeys((r.name, r.tag or "latest") for r in refs))


def prepare(client: EngineClient, refs: list[ImageRef], view: RegistryView, lfs: LfsStore, options: PushOptions) -> EnginePush:
    """Read ``refs`` from the engine: from the registry alone when it holds them, else by one save stream."""
    label = f"docker-daemon ({client.endpoint})"
    found = [(ref, *inspect(client, ref)) for ref in refs]
    wanted: dict[Digest, tuple[list[ImageRef], list[Digest]]] = {}  # one image may be asked for by several names
    present: set[Digest] = set()
    for ref, _, info in found:
        diff_ids = [Digest.parse(d) for d in (info.get("RootFS") or {}).get("Layers") or []]
        wanted.setdefault(Digest.parse(str(info.get("Id", ""))), ([], diff_ids))[0].append(ref)
        present |= {d for d in diff_ids if view.stored_layer(d) is not None}
    if all(view.has_blob(config) and set(ids) <= present for config, (_, ids) in wanted.items()):
        # Everything is in the registry already: build the manifests from it, read no layer.
        items = []
        for config, (refs_of, ids) in wanted.items():
            config_bytes = view.blob(config)
            layers = [Descriptor(mt.OCI_LAYER, d, view.stored_layer(d).uncompressed_size or 0) for d in ids]  # type: ignore[union-attr]
            data = synthesize_manifest(config_bytes, layers)
            root = Root(Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(data), len(data)))
            source = MemorySource(label, root, {root.descriptor.digest: data, config: config_bytes})
            items.append(PushItem(source, root.descriptor, _targets(refs_of)))
        return EnginePush(items, {})
    # The engine spends a core producing the stream; one zstd worker keeps up and does not compete.
    compression = Compression(options.compression, options.level, 1)
    stream = client.save(sorted({name for _, name, _ in found}))
    try:
        got = ingest_stream(stream, label, present=present, compression=compression, staging=lfs.staging, progress=options.progress)
    finally:
        stream.close()
    push = EnginePush([], {}, got)
    seen: set[Digest] = set()
    try:
        for root, data, staged, configs in images_of(got, compression, lfs.staging, options.progress):
            config = next(iter(configs))
            if config not in wanted or config in seen:
                continue
            seen.add(config)
            blobs = {root.descriptor.digest: data, **configs}
            push.items.append(PushItem(MemorySource(label, root, blobs), root.descriptor, _targets(wanted[config][0])))
            push.prestaged.update(staged)
    except BaseException:
        push.discard()
        raise
    missing = [str(ref) for config, (refs_of, _) in wanted.items() if config not in seen for ref in refs_of]
    if missing:
        push.discard()
        raise ImageNotFound(f"{label}: the engine's save stream did not contain {', '.join(missing)}")
    return push


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
