"""Image references in skopeo's transport syntax: ``docker-archive:PATH[:NAME:TAG]`` and friends.

Sources: ``docker-archive:PATH[:NAME:TAG|:@N]``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``.
Destinations of a pull: ``docker-archive:PATH``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``.
Images in the local Docker engine: ``docker-daemon:NAME[:TAG]`` or a bare ``NAME[:TAG]`` as a
source, ``docker-daemon:`` as a destination.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ImageNotFound, InvalidReference
from ..formats.files import open_files
from ..formats.oci_layout import OciLayoutSource
from ..image import ImageSource, Root
from ..reference import ImageRef, familiar
from .docker_archive import DockerArchiveSource

SOURCES = ("docker-archive", "oci", "oci-archive")
OUTPUTS = ("docker-archive", "oci", "oci-archive")
DAEMON = "docker-daemon"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A parsed source: transport, path, and an optional selector within it."""

    transport: str
    path: str
    selector: str | None = None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.selector}" if self.selector else "")


@dataclass(frozen=True, slots=True)
class PullTarget:
    """Where pulled images go: ``kind`` is one of :data:`OUTPUTS`; ``ref`` names an OCI image."""

    kind: str
    path: str
    ref: str | None = None


def _is_image_ref(text: str) -> bool:
    try:
        ImageRef.parse(familiar(text), default_tag="latest")
    except InvalidReference:
        return False
    return True


def _split(text: str) -> tuple[str, str, str | None]:
    transport, sep, rest = text.partition(":")
    if not sep or transport not in SOURCES:
        raise InvalidReference(f"{text!r}: expected docker-archive:PATH, oci:DIR, oci-archive:PATH, docker-daemon:NAME:TAG or NAME:TAG")
    path, sep, selector = rest.partition(":")
    if not path:
        raise InvalidReference(f"{text!r}: missing path after {transport}:")
    return transport, path, selector or None


def daemon_ref(text: str) -> ImageRef:
    """The image a ``docker-daemon:`` source (or bare reference) names, in the form the user wrote."""
    return ImageRef.parse(familiar(text), default_tag="latest")


def parse_source(text: str) -> SourceRef:
    """Parse a push source; raise :class:`InvalidReference` naming what is wrong."""
    if text.startswith(DAEMON + ":"):
        return SourceRef(DAEMON, str(daemon_ref(text[len(DAEMON) + 1 :])))
    head = text.partition(":")[0]
    if head not in SOURCES and _is_image_ref(text):
        return SourceRef(DAEMON, str(daemon_ref(text)))
    transport, path, selector = _split(text)
    if transport == "docker-archive" and selector and not selector.startswith("@"):
        ImageRef.parse(familiar(selector), default_tag="latest")
    return SourceRef(transport, path, selector)


def parse_target(text: str) -> PullTarget:
    """Parse a pull destination (``docker-archive:PATH``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]``, ``docker-daemon:``)."""
    if text in (DAEMON, DAEMON + ":"):
        return PullTarget(DAEMON, "")
    transport, path, selector = _split(text)
    if transport == "docker-archive" and selector:
        raise InvalidReference(f"{text!r}: a docker-archive output takes only a path; names come from the images")
    return PullTarget(transport, path, selector)


def open_source(ref: SourceRef, *, spool_dir: str | None = None) -> ImageSource:
    """Open the file or directory behind ``ref``."""
    files = open_files(ref.path, spool_dir=spool_dir)
    try:
        if ref.transport == "docker-archive":
            return DockerArchiveSource(files)
        return OciLayoutSource(files)
    except BaseException:
        files.close()
        raise


def select(source: ImageSource, ref: SourceRef) -> list[Root]:
    """The roots ``ref`` selects: all tagged ones, one by name/ref, or one by ``@N``.

    A docker-archive selector ``NAME:TAG`` yields the image with that one name only.
    """
    roots = source.roots()
    if ref.selector is None:
        if ref.transport == "docker-archive":
            tagged = [r for r in roots if r.names]
            return tagged if tagged else roots
        return roots
    if ref.selector.startswith("@"):
        try:
            return [roots[int(ref.selector[1:])]]
        except (ValueError, IndexError):
            raise InvalidReference(f"{ref}: no image number {ref.selector[1:]} ({len(roots)} in the source)") from None
    wanted = familiar(ref.selector)
    if ref.transport == "docker-archive" and ":" not in wanted.rsplit("/", 1)[-1]:
        wanted += ":latest"
    found = [r for r in roots if wanted in r.names or ref.selector in r.refs]
    if ref.transport == "docker-archive":
        # Selecting one name of an image tags that name only, not its other names.
        found = [Root(r.descriptor, (wanted,), r.refs) for r in found if wanted in r.names]
    if not found:
        have = sorted({n for r in roots for n in r.names + r.refs})
        raise ImageNotFound(f"{ref}: no image {ref.selector!r} in the source", hint=f"it has: {', '.join(have) or 'no names'}")
    return found
