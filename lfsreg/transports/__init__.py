"""Every image source and destination, in skopeo's ``TRANSPORT:REFERENCE`` syntax, in one table.

Sources: ``docker-archive:PATH[:NAME:TAG|:@N]``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``,
``docker://HOST/NAME[:TAG|@DIGEST]`` (a distribution registry), and images in the local Docker
engine: ``docker-daemon:NAME[:TAG]`` or a bare ``NAME[:TAG]``.
Destinations of a pull: ``docker-archive:PATH``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``,
``docker://HOST[/NAME[:TAG]]`` and ``docker-daemon:``.

Adding a transport is one module in this package plus one row in :data:`TRANSPORTS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InvalidReference, UsageError
from ..image import ImageDestination, ImageSource, Root
from ..reference import ImageRef, familiar
from . import docker_archive, docker_daemon, docker_registry, oci_layout
from .docker_registry import DockerAccess

DAEMON = "docker-daemon"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A parsed source: transport, path (an image reference for the engine), optional selector."""

    transport: str
    path: str
    selector: str | None = None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.selector}" if self.selector else "")


@dataclass(frozen=True, slots=True)
class PullTarget:
    """A parsed destination: transport, path, and the name an OCI layout gives the image."""

    kind: str
    path: str
    ref: str | None = None


@dataclass(frozen=True)
class OpenOptions:
    """What opening a source or destination may need besides its reference.

    Attributes:
        spool_dir: where compressed tarballs are decompressed to (default: the temp dir).
        source: how to reach ``docker://`` sources (credentials, TLS, platform).
        dest: how to reach a ``docker://`` destination.
    """

    spool_dir: str | None = None
    source: DockerAccess = field(default_factory=DockerAccess)
    dest: DockerAccess = field(default_factory=DockerAccess)


@dataclass(frozen=True, slots=True)
class Transport:
    """One row of :data:`TRANSPORTS`: how a transport's references are read and opened.

    Attributes:
        name: the prefix before the first colon.
        open_source: opens a source for references of this transport (and a spool directory):
            for each one alone, or for all of a push's at once when ``shared``.
        select: the images a reference's selector picks among a source's roots.
        check_selector: validates a source selector when the reference is parsed.
        open_destination: opens a pull destination, or ``None`` if the transport is only a source.
        path_required: ``TRANSPORT:`` alone is not a reference.
        shared: one source serves all of a push's references (the engine: one save stream).
        dest_selector: a destination reference may name the image (``oci:DIR:REF``).
        parse_path: checks the whole rest of a reference of a transport with its own syntax
            (``docker://HOST:PORT/NAME:TAG``: colons are not selectors); the rest is the path.
    """

    name: str
    open_source: Callable[[list[SourceRef], OpenOptions], ImageSource]
    select: Callable[[list[Root], str | None, str], list[Root]]
    check_selector: Callable[[str], None] | None
    open_destination: Callable[[PullTarget, OpenOptions], ImageDestination] | None
    path_required: bool = True
    dest_selector: bool = True
    shared: bool = False
    parse_path: Callable[[str, bool], object] | None = None


def _one(opener: Callable[[str, str | None], ImageSource]) -> Callable[[list[SourceRef], OpenOptions], ImageSource]:
    def open_one(refs: list[SourceRef], options: OpenOptions) -> ImageSource:
        (ref,) = refs
        return opener(ref.path, options.spool_dir)

    return open_one


def _engine_source(refs: list[SourceRef], options: OpenOptions) -> ImageSource:
    return docker_daemon.DockerDaemonSource([ImageRef.parse(r.path) for r in refs])


def _registry_source(refs: list[SourceRef], options: OpenOptions) -> ImageSource:
    (ref,) = refs
    return docker_registry.open_source(ref.path, options.source)


def _every_root(roots: list[Root], selector: str | None, label: str) -> list[Root]:
    return roots


TRANSPORTS: dict[str, Transport] = {
    t.name: t
    for t in (
        Transport(
            "docker-archive",
            _one(docker_archive.open_source),
            docker_archive.select,
            docker_archive.check_selector,
            lambda t, o: docker_archive.DockerArchiveDestination(t.path),
            dest_selector=False,
        ),
        Transport(
            "oci",
            _one(oci_layout.open_source),
            oci_layout.select,
            None,
            lambda t, o: oci_layout.OciLayoutDestination(t.path, t.ref, archive=False),
        ),
        Transport(
            "oci-archive",
            _one(oci_layout.open_source),
            oci_layout.select,
            None,
            lambda t, o: oci_layout.OciLayoutDestination(t.path, t.ref, archive=True),
        ),
        Transport(
            DAEMON,
            _engine_source,
            _every_root,
            None,
            lambda t, o: docker_daemon.DockerDaemonDestination(),
            path_required=False,
            shared=True,
        ),
        Transport(
            "docker",
            _registry_source,
            docker_registry.select,
            None,
            lambda t, o: docker_registry.RegistryDestination(t.path, o.dest),
            parse_path=lambda rest, source: docker_registry.parse(rest, name_required=source),
        ),
    )
}
_EXPECTED = "expected docker-archive:PATH, oci:DIR, oci-archive:PATH, docker://HOST/NAME:TAG, docker-daemon:NAME:TAG or NAME:TAG"


def _transport(text: str) -> tuple[Transport, str]:
    name, sep, rest = text.partition(":")
    if not sep or name not in TRANSPORTS:
        raise InvalidReference(f"{text!r}: {_EXPECTED}")
    return TRANSPORTS[name], rest


def _engine_ref(text: str) -> str:
    """The image a ``docker-daemon:`` source (or bare reference) names, in the form the user wrote."""
    return str(ImageRef.parse(familiar(text), default_tag="latest"))


def parse_source(text: str) -> SourceRef:
    """Parse a push source; raise :class:`InvalidReference` (or :class:`UsageError`) naming what is wrong.

    A bare ``NAME[:TAG]`` is an engine image, unless a file of that name exists: then the
    reference is ambiguous and the user must say which.
    """
    name = text.partition(":")[0]
    if name not in TRANSPORTS:
        try:
            ref = _engine_ref(text)
        except InvalidReference:
            raise InvalidReference(f"{text!r}: {_EXPECTED}") from None
        if os.path.exists(text):
            raise UsageError(
                f"{text!r} names a Docker engine image, but a file of that name exists",
                hint=f"push the file with docker-archive:{text} (or oci:{text}), or the engine image with {DAEMON}:{text}",
            )
        return SourceRef(DAEMON, ref)
    transport, rest = _transport(text)
    if transport.name == DAEMON:
        return SourceRef(DAEMON, _engine_ref(rest))
    if transport.parse_path is not None:
        transport.parse_path(rest, True)
        return SourceRef(transport.name, rest)
    path, _, selector = rest.partition(":")
    if not path:
        raise InvalidReference(f"{text!r}: missing path after {transport.name}:")
    if selector and transport.check_selector is not None:
        transport.check_selector(selector)
    return SourceRef(transport.name, path, selector or None)


def parse_target(text: str) -> PullTarget:
    """Parse a pull destination (``docker-archive:PATH``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``, ``docker-daemon:``)."""
    if text == DAEMON:
        text += ":"
    transport, rest = _transport(text)
    if transport.open_destination is None:
        raise InvalidReference(f"{text!r}: {transport.name} is not a pull destination")
    if transport.parse_path is not None:
        transport.parse_path(rest, False)
        return PullTarget(transport.name, rest)
    path, _, selector = rest.partition(":")
    if not transport.path_required:
        if rest:
            raise InvalidReference(f"{text!r}: {transport.name}: takes no path; the images keep their names")
        return PullTarget(transport.name, "")
    if not path:
        raise InvalidReference(f"{text!r}: missing path after {transport.name}:")
    if selector and not transport.dest_selector:
        raise InvalidReference(f"{text!r}: a {transport.name} output takes only a path; names come from the images")
    return PullTarget(transport.name, path, selector or None)


def open_sources(
    refs: list[SourceRef], *, spool_dir: str | None = None, options: OpenOptions | None = None
) -> list[tuple[list[SourceRef], ImageSource]]:
    """Open the sources ``refs`` name, each with the references it serves; the caller closes them.

    Sources come in the order of ``refs``; a shared transport's one source comes after them.
    """
    options = options or OpenOptions(spool_dir=spool_dir)
    groups = [[r] for r in refs if not TRANSPORTS[r.transport].shared]
    for name, transport in TRANSPORTS.items():
        if transport.shared and (mine := [r for r in refs if r.transport == name]):
            groups.append(mine)
    opened: list[tuple[list[SourceRef], ImageSource]] = []
    try:
        for group in groups:
            opened.append((group, TRANSPORTS[group[0].transport].open_source(group, options)))
    except BaseException:
        for _, source in opened:
            source.close()
        raise
    return opened


def select(source: ImageSource, ref: SourceRef) -> list[Root]:
    """The roots ``ref`` selects in ``source`` (see each transport's ``select``)."""
    return TRANSPORTS[ref.transport].select(source.roots(), ref.selector, str(ref))


def open_destination(target: PullTarget, options: OpenOptions | None = None) -> ImageDestination:
    """Open the destination ``target`` names (the engine is pinged; an OCI layout's index is read)."""
    opener = TRANSPORTS[target.kind].open_destination
    assert opener is not None  # parse_target refuses source-only transports
    return opener(target, options or OpenOptions())
