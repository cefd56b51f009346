"""``tags`` and ``images`` of a registry, through a memo keyed by git tree ids and image digests.

A listing of the whole registry reads every name's ``_tags`` tree and tag files, and for
``images`` every manifest and config: seconds on 30,000 images. What it learns depends only on
the objects it read, so it is kept (JSON, in lfsreg's cache, ``BASE.listing.json`` beside
``du``'s memos, :mod:`lfsreg.ops.walk`):

* ``names``: the ``repositories`` tree id -> every ``(name, _tags tree id)`` under it;
* ``tags``: a ``_tags`` tree id -> its ``(tag, digest)`` pairs, when every tag file parsed;
* ``images``: a manifest or index digest -> its summary (read and checked against that digest).

An entry is only used for the exact id or digest it was computed from, so a push that changes
one name reads that name again and nothing else of it; damaged or unreadable objects are never
memoised (they are read, and reported, every time); a memo that does not look as written is
ignored. Results and errors are exactly those of reading everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..describe import ImageSummary, UnreadableImage, summarize
from ..digest import Digest
from ..errors import LfsregError, NotARegistryError
from ..git.bulk import RawSnapshot
from ..reference import validate_name
from ..registry import layout
from ..registry.view import RegistryView
from .walk import Memo, matches, paused_gc

log = logging.getLogger(__name__)
#: the memo's files (``BASE.listing-PART.json``) and the kinds each holds: ``tags`` need not load the summaries
PARTS = {"tags": ("names", "tags"), "images": ("images",)}

#: a name's tags: ``(tag, digest)``, or why that tag file cannot be read; or why the name's directory cannot be
TagEntries = list[tuple[str, Digest | LfsregError]] | LfsregError


class Listing:
    """Reads names, tags and summaries of one :class:`RegistryView` through the memo files at ``base`` (``None``: no memo).

    ``base`` is ``du``'s memo base name for the repository (:func:`lfsreg.ops.usage.memo_file`).
    """

    def __init__(self, view: RegistryView, base: str | None) -> None:
        self.snapshot = RawSnapshot(view.snapshot)  # what the memo does not know is read about 10x faster
        self.view = RegistryView(self.snapshot, view.label)
        self._base = base
        self._memos: dict[str, Memo] = {}
        self._digests: dict[str, Digest] = {}
        self._summaries: Callable[[str], Any] | None = None
        self._whole_names = False  # every name's directory, _tags and tag files are in the mirror

    def close(self) -> None:
        """Release the packs' maps and what was read (:meth:`save` needs only the memo)."""
        self.snapshot.close()
        self.snapshot = self.view = None  # type: ignore[assignment]

    def _memo(self, part: str) -> Memo:
        memo = self._memos.get(part)
        if memo is None:
            memo = self._memos[part] = Memo(f"{self._base}.listing-{part}.json" if self._base else None, PARTS[part])
        return memo

    def _getter(self, part: str, kind: str) -> Callable[[str], Any]:
        """:meth:`Memo.get` of one kind, for look-ups by the ten thousand."""
        memo = self._memo(part)
        new, old = memo.new[kind], memo.old[kind]

        def get(key: str) -> Any:
            value = new.get(key)
            if value is None:
                value = old.get(key)
                if value is not None:
                    new[key] = value
            return value

        return get

    def save(self, walked: Sequence[str] = ()) -> None:
        """Write the memo files this listing loaded (a failure only costs the next listing time).

        ``walked``: the kinds this listing looked up in full (a listing of everything), of which
        only what it used is kept, so a file stays the size of the registry; of the others,
        what it learned is added to what was there.
        """
        for memo in self._memos.values():
            for kind in memo.KINDS:
                if kind not in walked:
                    memo.new[kind] = {**memo.old[kind], **memo.new[kind]}
            memo.save()

    def _digest(self, text: str) -> Digest:
        """``Digest.parse`` of a memo's text, once per text (tags of one image share it); raises what it raises."""
        found = self._digests.get(text)
        if found is None:
            if not isinstance(text, str):
                raise ValueError("not a digest")
            found = self._digests[text] = Digest.parse(text)
        return found

    # -- names ------------------------------------------------------------------------------
    def _repositories(self) -> str | None:
        """The hex id of the ``repositories`` tree (``None``: there is none, or it cannot be read)."""
        if self.view.snapshot.root is None:
            return None  # no commit yet
        try:
            entry = self.view.snapshot.directory("").get(layout.REPOSITORIES.encode())
        except LfsregError:
            return None
        return entry[1].decode() if entry is not None else None

    def tag_dirs(self, globs: Sequence[str] = ()) -> list[tuple[str, bytes]]:
        """:meth:`RegistryView.tag_dirs`: from the memo when it knows the ``repositories`` tree (then every name)."""
        return self._tag_dirs(globs)[0]

    def _tag_dirs(self, globs: Sequence[str]) -> tuple[list[tuple[str, bytes]], bool]:
        """:meth:`tag_dirs`, and whether every name is known to be valid (the memo keeps only valid names)."""
        key = self._repositories()
        if key is not None and self.view.layout.name_levels:
            key = f"{key}/v{self.view.layout.version}"  # the same tree names other names in a fanned-out layout
        if key is not None:
            known = self._getter("tags", "names")(key)
            try:
                names, shas = known  # the names a line each, and their _tags ids one after the other
                listed = names.split("\n") if names else []
                if len(shas) == 40 * len(listed):
                    return [(name, shas[40 * i : 40 * i + 40].encode()) for i, name in enumerate(listed)], True
            except (TypeError, ValueError, AttributeError):
                pass
            if known is not None:
                log.debug("ignoring a damaged listing memo entry for %s", key)
        if not globs:  # a partial mirror: everything under repositories/ in one exchange, not one a level and 10,000 ids
            self._whole_names = self.snapshot.prefetch_whole(layout.REPOSITORIES)
        dirs = self.view.tag_dirs(globs)
        if key is None or globs:
            return dirs, False
        try:
            for name, _ in dirs:
                validate_name(name)  # no newline either
        except LfsregError:
            return dirs, False
        self._memo("tags").put("names", key, ["\n".join(name for name, _ in dirs), b"".join(sha for _, sha in dirs).decode()])
        return dirs, True

    # -- tags -------------------------------------------------------------------------------
    def _decode_tags(self, known: Any, sha: bytes) -> list[tuple[str, Digest | LfsregError]] | None:
        """A ``tags`` memo entry, ``"TAG DIGEST TAG DIGEST ..."`` (tags with a space are not memoised); ``None``: damaged."""
        try:
            parts = known.split(" ")
            if len(parts) % 2 == 0:
                digest = self._digest
                return [(parts[i], digest(parts[i + 1])) for i in range(0, len(parts), 2)]
        except (AttributeError, ValueError, LfsregError):
            pass
        log.debug("ignoring a damaged listing memo entry for %s", sha.decode())
        return None

    def tag_entries(self, dirs: Sequence[tuple[str, bytes]], *, valid: bool = False) -> list[tuple[str, TagEntries]]:
        """:meth:`RegistryView.tags_in` of ``dirs``: what the memo knows, and the rest read (and remembered if all parsed).

        ``valid``: the names are known to be valid (they came from the memo).
        """
        out: dict[str, TagEntries] = {}
        todo: list[tuple[str, bytes]] = []
        get = self._getter("tags", "tags")
        for name, sha in dirs:
            known = get(sha.decode())
            entries = self._decode_tags(known, sha) if known is not None else None
            if entries is None:
                todo.append((name, sha))
                continue
            if not valid:
                try:
                    validate_name(name)  # a name's directory is not a name because the memo knew its tags
                except LfsregError as exc:
                    out[name] = exc
                    continue
            out[name] = entries
        if todo:
            if not self._whole_names:
                self.view.prefetch_tags([name for name, _ in todo])  # a partial mirror: what is not known, in two exchanges
            shas = dict(todo)
            memo = self._memo("tags")
            for name, found in self.view.tags_in(todo):
                out[name] = found
                if not isinstance(found, LfsregError) and all(isinstance(d, Digest) and tag and " " not in tag for tag, d in found):
                    memo.put("tags", shas[name].decode(), " ".join(f"{tag} {d}" for tag, d in found))
        return [(name, out[name]) for name, _ in dirs]

    def tags(self, tag_globs: Sequence[str] = ()) -> list[tuple[str, str, Digest]]:
        """``(name, tag, digest)`` of every tag whose tag matches one of ``tag_globs`` (all if none), as ``Registry.tags``.

        Raises the first name's error, or the first tag file's that cannot be read (one that
        does not parse is left out), in the order of names and tags.
        """
        out = []
        with paused_gc():
            dirs, valid = self._tag_dirs(())
            for name, found in self.tag_entries(dirs, valid=valid):
                if isinstance(found, LfsregError):
                    raise found
                for tag, digest in found:
                    if isinstance(digest, LfsregError):
                        if not isinstance(digest, NotARegistryError):  # unreadable, not merely unparsable
                            raise digest
                        continue
                    if matches(tag, tag_globs):
                        out.append((name, tag, digest))
        return out

    # -- images -----------------------------------------------------------------------------
    def _get_summary(self, key: str) -> Any:
        if self._summaries is None:
            self._summaries = self._getter("images", "images")
        return self._summaries(key)

    def _known_summary(self, digest: Digest, key: str) -> ImageSummary | None:
        known = self._get_summary(key)
        if known is None:
            return None
        try:
            image_id, created, size, platforms = known
            if (created is None or type(created) is str) and type(size) is int and all(type(p) is str for p in platforms):
                image = None if image_id is None else self._digest(image_id)
                return ImageSummary("", "", digest, image, created, size, tuple(platforms))
        except (TypeError, ValueError, LfsregError):
            pass
        log.debug("ignoring a damaged listing memo entry for %s", key)
        return None

    def _read_summary(self, digest: Digest, key: str) -> ImageSummary:
        """:func:`lfsreg.describe.summarize` of ``digest``, remembered; raises what reading it raises."""
        found = summarize(self.view, digest)
        image_id = None if found.image_id is None else str(found.image_id)
        self._memo("images").put("images", key, [image_id, found.created, found.size, list(found.platforms)])
        return found

    def images(
        self, image_globs: Sequence[str] = (), tag_globs: Sequence[str] = (), *, unreadable: list[UnreadableImage] | None = None
    ) -> list[ImageSummary]:
        """``Registry.images``: one summary per tag; what cannot be read raises, or goes to ``unreadable`` if given."""
        out = []

        def failed(name: str, tag: str | None, digest: Digest | None, error: LfsregError) -> None:
            if unreadable is None:
                raise error
            unreadable.append(UnreadableImage(name, tag, digest, error))

        with paused_gc():
            dirs, valid = self._tag_dirs(image_globs)
            if image_globs:
                dirs = [(n, sha) for n, sha in dirs if matches(n, image_globs)]
            listed = self.tag_entries(dirs, valid=valid)
            summaries = self._summaries_of(listed, tag_globs, every=not image_globs)
            for name, entries in listed:
                if isinstance(entries, LfsregError):  # the name's tag directory itself cannot be read
                    failed(name, None, None, entries)
                    continue
                for tag, found in entries:
                    if not matches(tag, tag_globs):
                        continue
                    if not isinstance(found, Digest):
                        failed(name, tag, None, found)
                        continue
                    base = summaries[found]
                    if isinstance(base, LfsregError):
                        failed(name, tag, found, base)
                        continue
                    out.append(ImageSummary(name, tag, found, base.image_id, base.created, base.size, base.platforms))
        return out

    def _summaries_of(
        self, listed: list[tuple[str, TagEntries]], tag_globs: Sequence[str], *, every: bool = False
    ) -> dict[Digest, ImageSummary | LfsregError]:
        """The summary (or why it cannot be read) of every image a tag of ``listed`` that matches ``tag_globs`` names.

        From the memo where it knows them; the rest read. A partial mirror fetches their
        manifests and configs first: with ``every`` (``listed`` is every name), the whole
        ``blobs/`` directory in one exchange (less what an earlier listing fetched), else an
        exchange per level.
        """
        found: dict[Digest, ImageSummary | LfsregError | None] = {}
        for _, entries in listed:
            if isinstance(entries, LfsregError):
                continue
            for tag, digest in entries:
                if not isinstance(digest, Digest) or digest in found:
                    continue
                if matches(tag, tag_globs):
                    found[digest] = self._known_summary(digest, str(digest))
        missing = [digest for digest, summary in found.items() if summary is None]
        if missing and self.view.snapshot.fetches:
            try:
                if not (every and self.snapshot.prefetch_whole(self.view.layout.blob_path(missing[0]).split("/", 1)[0])):
                    self.view.prefetch_images(missing)
            except LfsregError as exc:
                log.debug("%s: prefetching the listing stopped: %s", self.view.label, exc)
        for digest in missing:
            try:
                found[digest] = self._read_summary(digest, str(digest))
            except LfsregError as exc:
                found[digest] = exc
        return found  # type: ignore[return-value]  # no None is left
