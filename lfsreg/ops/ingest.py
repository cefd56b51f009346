"""Ingesting a ``docker save`` stream in one pass, as it arrives (from a Docker engine).

``docker save`` puts ``manifest.json`` last, so a stream cannot be parsed before its layers go
by. Instead of spooling it to disk first, every large member is staged the moment it arrives:
hashed (its diff_id), compressed as the push asks, written to LFS staging. Members whose names
say they are layers the registry already holds are skipped unread. When the stream ends,
``manifest.json`` and the configs tie staged layers to images; layers that turn out not to
belong to any image are discarded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .. import mediatypes as mt
from ..compression import FeedDecompressor, sniff
from ..digest import CHUNK, Digest, HashingReader
from ..errors import DigestMismatchError, InvalidImageError
from ..formats.files import safe_path
from ..image import Root
from ..layers import Compression, LayerProgress, Staging, StoredLayer, stage_plain
from ..manifest import Descriptor, parse_config
from ..progress import ProgressCallback
from ..transports.docker_archive import read_manifest_json, synthesize_manifest

SMALL = 1 << 20  # members up to this size are kept in memory (configs, manifests, tiny layers)
_HEX_NAME = re.compile(r"(?:^|/)(?:blobs/sha256/)?([0-9a-f]{64})(?:\.tar)?$")


@dataclass
class Ingested:
    """What a stream held: small files, links, and staged layers by member path."""

    label: str
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    staged: dict[str, StoredLayer] = field(default_factory=dict)  # member path -> staged layer
    skipped: dict[str, Digest] = field(default_factory=dict)  # member path -> diff_id its name claims
    verbatim: set[str] = field(default_factory=set)  # members that arrived compressed (kept as they are)
    present: set[Digest] = field(default_factory=set)  # diff_ids the registry already holds

    def resolve(self, path: str) -> str:
        """Follow links inside the archive."""
        name = safe_path(path, self.label)
        for _ in range(16):
            if name not in self.links:
                return name
            name = self.links[name]
        raise InvalidImageError(f"{self.label}: link loop at {path}")

    def discard(self) -> None:
        """Remove staged files that are still there (a push consumes the ones it uploads)."""
        for layer in self.staged.values():
            if layer.staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer.staged)


def _stage_compressed(reader: BinaryIO, size: int, algorithm: str, staging: Staging, bar: LayerProgress) -> StoredLayer:
    """Keep a compressed member's bytes; compute both its digest and its diff_id."""
    src = HashingReader(reader, limit=size)
    feed = FeedDecompressor(algorithm)
    plain = hashlib.sha256()
    usize = 0
    with staging() as (out, path):
        while data := src.read(CHUNK):
            out.write(data)
            chunk = feed.feed(data)
            plain.update(chunk)
            usize += len(chunk)
            bar.step(len(data))
        out.flush()
    desc = Descriptor(mt.OCI_LAYER_FOR[algorithm], src.digest, src.count)
    return StoredLayer(desc, Digest("sha256", plain.hexdigest()), usize, path)


def _stage_member(
    got: Ingested, reader: BinaryIO, name: str, size: int, compression: Compression, staging: Staging, progress: ProgressCallback
) -> StoredLayer:
    head = reader.read(4)
    rest = io.BufferedReader(_Prefixed(head, reader))  # type: ignore[arg-type]
    bar = LayerProgress(progress, name, size)
    algorithm = sniff(head)
    if algorithm != "none":
        layer = _stage_compressed(rest, size, algorithm, staging, bar)  # type: ignore[arg-type]
        got.verbatim.add(name)
    else:
        src = HashingReader(rest, limit=size)  # type: ignore[arg-type]
        stored, diff_id, path = stage_plain(src, lambda: src.digest, compression, staging, bar)
        layer = StoredLayer(stored, diff_id, src.count, path)
    bar.done()
    return layer


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def ingest_stream(
    stream: BinaryIO, label: str, *, present: set[Digest], compression: Compression, staging: Staging, progress: ProgressCallback
) -> Ingested:
    """Read a ``docker save`` stream once, staging every layer the registry does not hold."""
    got = Ingested(label, present=set(present))
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:
            for info in tar:
                name = safe_path(info.name, label)
                if info.issym() or info.islnk():
                    base = posixpath.dirname(name) if info.issym() else ""
                    got.links[name] = safe_path(posixpath.join(base, info.linkname), label, allow_dotdot=True)
                    continue
                if not info.isfile():
                    continue
                reader = tar.extractfile(info)
                assert reader is not None
                hint = _HEX_NAME.search(name)
                if info.size > SMALL and hint and Digest.sha256(hint.group(1)) in present:
                    got.skipped[name] = Digest.sha256(hint.group(1))  # the registry has it: not even read
                    continue
                if info.size <= SMALL:
                    got.files[name] = reader.read()
                else:
                    got.staged[name] = _stage_member(got, reader, name, info.size, compression, staging, progress)
    except (tarfile.TarError, EOFError) as exc:
        got.discard()
        raise InvalidImageError(f"{label}: the image stream is not a valid tar archive ({exc})") from exc
    except BaseException:
        got.discard()
        raise
    return got


def images_of(
    got: Ingested,
    compression: Compression,
    staging: Staging,
    progress: ProgressCallback,
) -> Iterator[tuple[Root, bytes, dict[Digest, StoredLayer], dict[Digest, bytes]]]:
    """Each image of the stream: its root, manifest bytes, staged layers and metadata blobs.

    Every layer is checked against its config's diff_id: a staged one by the hash taken while
    it streamed by, a skipped one by the name it carried (the registry holds that content).
    """
    if "manifest.json" not in got.files:
        raise InvalidImageError(f"{got.label}: not a docker save stream (no manifest.json)")
    for entry in read_manifest_json(got.files["manifest.json"], got.label):
        config_bytes = got.files.get(got.resolve(entry.config_path))
        if config_bytes is None:
            raise InvalidImageError(f"{got.label}: missing config {entry.config_path}")
        config = parse_config(config_bytes, f"{got.label}: {entry.config_path}")
        if len(config.diff_ids) != len(entry.layer_paths):
            raise InvalidImageError(
                f"{got.label}: {entry.config_path} lists {len(config.diff_ids)} layers, manifest.json {len(entry.layer_paths)}"
            )
        layers: list[Descriptor] = []
        staged: dict[Digest, StoredLayer] = {}
        for path, diff_id in zip(entry.layer_paths, config.diff_ids, strict=True):
            member = got.resolve(path)
            if member in got.files and member not in got.staged and diff_id in got.present:
                layers.append(Descriptor(mt.OCI_LAYER, diff_id, len(got.files[member])))  # the registry has it
                continue
            if member in got.files and member not in got.staged:  # a tiny layer kept in memory
                got.staged[member] = _stage_member(
                    got,
                    io.BytesIO(got.files[member]),
                    member,
                    len(got.files[member]),  # type: ignore[arg-type]
                    compression,
                    staging,
                    progress,
                )
            if member in got.staged:
                layer = got.staged[member]
                if layer.diff_id != diff_id:
                    raise DigestMismatchError(f"{got.label}: layer {path}: content is {layer.diff_id}, the config says {diff_id}")
                # A layer that arrived compressed keeps its bytes and digest.
                plain = Descriptor(mt.OCI_LAYER, diff_id, layer.uncompressed_size or 0)
                source_desc = layer.desc if member in got.verbatim else plain
                staged[source_desc.digest] = layer
            elif got.skipped.get(member) == diff_id:
                source_desc = Descriptor(mt.OCI_LAYER, diff_id, 0)
            else:
                raise InvalidImageError(f"{got.label}: layer {path} of {entry.config_path} is missing from the stream")
            layers.append(source_desc)
        data = synthesize_manifest(config_bytes, layers)
        root = Root(Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(data), len(data)), entry.names)
        yield root, data, staged, {Digest.of_bytes(config_bytes): config_bytes}
