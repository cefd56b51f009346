"""Image names, tags and references, validated by the distribution-spec grammar.

A validated name or tag is safe to use as a path inside the registry tree: every path
component starts with ``[a-z0-9]`` (so never ``.``, ``..`` or ``_tags``) and contains no
separator other than ``/`` between components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .digest import Digest
from .errors import InvalidReference

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9-]+:[0-9]+|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+:[0-9]+)"
NAME_RE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_NAME = 255


def expanded(name: str) -> str:
    """The full name Docker gives ``name``: ``alpine`` -> ``docker.io/library/alpine``, ``acme/app`` -> ``docker.io/acme/app``.

    A name whose first component is a registry host (it has a ``.`` or a ``:``, is
    ``localhost``, or has an upper-case letter) stays as it is, except that Docker Hub's
    legacy host ``index.docker.io`` becomes ``docker.io``. This is the name whose length
    Docker and podman limit to :data:`MAX_NAME` when they read an image's ``RepoTags``.
    """
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return f"{domain}/{remainder}"


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, its middle elided when long (a 300-character name in a one-line error)."""
    return repr(text) if len(text) <= limit else repr(f"{text[: limit // 2]}...{text[-limit // 4 :]}")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name; else raise :class:`InvalidReference`.

    The length limit applies to the :func:`expanded` name, as in Docker and podman: a name
    they would refuse to load is refused here, before anything is written.
    """
    full = expanded(name)
    if len(full) > MAX_NAME:
        as_full = f" as {_shown(full)}" if full != name else ""
        raise InvalidReference(
            f"invalid image name {_shown(name)}: too long, {len(full)} characters{as_full}; Docker and podman allow {MAX_NAME}"
        )
    if not NAME_RE.fullmatch(name):
        raise InvalidReference(
            f"invalid image name {name!r}: use lowercase letters, digits and separators (. _ __ -), components joined by '/'"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag; else raise :class:`InvalidReference`."""
    if not TAG_RE.fullmatch(tag):
        raise InvalidReference(f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")
    return tag


def familiar(name: str) -> str:
    """Strip Docker Hub's implicit prefixes: ``docker.io/library/alpine`` -> ``alpine``."""
    for hub in ("docker.io/", "index.docker.io/"):
        if name.startswith(hub):
            name = name[len(hub) :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
            break
    return name


@dataclass(frozen=True, slots=True)
class ImageRef:
    """``NAME:TAG`` or ``NAME@sha256:…``: exactly one of ``tag`` and ``digest`` is set."""

    name: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: str | None = None) -> ImageRef:
        """Parse and validate an image reference.

        Args:
            text: ``NAME:TAG``, ``NAME@sha256:<hex>`` or, with ``default_tag``, a bare ``NAME``.
            default_tag: the tag to assume when ``text`` names none (``None`` = a tag is required).
        """
        name, at, digest = text.partition("@")
        if at:
            return cls(validate_name(name), digest=Digest.parse(digest))
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            return cls(validate_name(text[:colon]), tag=validate_tag(text[colon + 1 :]))
        if default_tag is None:
            raise InvalidReference(f"invalid image reference {text!r}: expected NAME:TAG or NAME@sha256:<hex>")
        return cls(validate_name(text), tag=default_tag)

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag}"


def parse_tagged(text: str) -> tuple[str, str]:
    """``(name, tag)`` of a ``NAME[:TAG]`` that names an image (tag ``latest`` if none).

    A ``NAME@sha256:…`` is refused with :class:`InvalidReference`: a digest names content,
    not a tag, so it cannot say which tag to set.
    """
    ref = ImageRef.parse(text, default_tag="latest")
    if ref.tag is None:
        raise InvalidReference(f"{text!r}: a digest cannot name a tag; give NAME:TAG")
    return ref.name, ref.tag
