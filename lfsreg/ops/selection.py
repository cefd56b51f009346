"""Which images a push takes from its sources, and the ``(name, tag)`` pairs it gives them."""

from __future__ import annotations

from ..errors import UsageError
from ..image import ImageSource, RegistryContents, Root, StagingSource
from ..layers import LayerStaging
from ..reference import parse_tagged
from ..transports import SourceRef, select
from .push import PushItem


def push_items(
    opened: list[tuple[list[SourceRef], ImageSource]],
    renames: list[tuple[str, str]],
    registry: RegistryContents,
    staging: LayerStaging,
) -> list[PushItem]:
    """The images the references select in their sources, named by the sources or by ``renames``.

    Sources that stage their own layers are prepared first (they read what ``registry``
    lacks). ``renames`` (``--tag``) replace the sources' names and need exactly one image; an
    image with no name at all is a :class:`UsageError`, as is a source name given by digest.
    """
    for _, source in opened:
        if isinstance(source, StagingSource):
            source.prepare(registry, staging)
    return _named(_select(opened), renames)


def check_push_names(opened: list[tuple[list[SourceRef], ImageSource]], renames: list[tuple[str, str]]) -> None:
    """Raise what :func:`push_items` would about names, before the registry is opened or created.

    Sources that stage their own layers list their images only once prepared (against the
    registry); with one among them only the images of the other sources are checked here.
    """
    if not any(isinstance(source, StagingSource) for _, source in opened):
        _named(_select(opened), renames)
        return
    items = _select([(refs, s) for refs, s in opened if not isinstance(s, StagingSource)])
    if not renames:
        _named(items, [])
    elif items:  # the staging sources add at least one image more
        raise UsageError(f"--tag names one image, but the sources hold more than {len(items)}")


def _select(opened: list[tuple[list[SourceRef], ImageSource]]) -> list[PushItem]:
    items: list[PushItem] = []
    for refs, source in opened:
        roots: list[Root] = []
        for ref in refs:
            roots += [r for r in select(source, ref) if r not in roots]
        items += [PushItem(source, r.descriptor, tuple(dict.fromkeys(parse_tagged(n) for n in r.names))) for r in roots]
    return items


def _named(items: list[PushItem], renames: list[tuple[str, str]]) -> list[PushItem]:
    if renames:
        if len(items) != 1:
            raise UsageError(f"--tag names one image, but the sources hold {len(items)}")
        return [PushItem(items[0].source, items[0].root, tuple(dict.fromkeys(renames)))]
    for item in items:
        if not item.targets:
            raise UsageError(f"{item.source.label}: image {item.root.digest.short} has no name", hint="give it one with --tag NAME:TAG")
    return items
