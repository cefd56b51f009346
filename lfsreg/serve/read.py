"""The read side of ``lfsreg serve``: ``/v2/``, manifests, tags, the catalog and referrers.

Manifests are answered with their exact stored bytes, ``Content-Type`` from the manifest
itself and ``Docker-Content-Digest``. ``Accept`` is respected as distribution 2.8 does: a
manifest whose type the client does not accept is ``MANIFEST_UNKNOWN``, except that a client
accepting image manifests but not indexes (an old Docker schema 2 client) is given the
``linux/amd64`` manifest of an index (else its first), as distribution gives it.
Blobs are :mod:`lfsreg.serve.blobs`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import InvalidReference, LfsregError
from ..manifest import dump_json, load_json, parse_manifest, sniff_media_type
from ..reference import ImageRef, validate_tag
from ..registry.view import RegistryView
from .blobs import BlobReader
from .errors import ApiError
from .http import Request, Response
from .signatures import SignatureGate
from .state import ServeContext

#: The most entries one page of ``tags/list`` or ``_catalog`` holds when the client asks for more (or for none).
MAX_PAGE = 10000
_FALLBACK_PLATFORM = "linux/amd64"


def parse_digest(text: str) -> Digest:
    """A digest from a path; ``DIGEST_INVALID`` if malformed."""
    try:
        return Digest.parse(text)
    except InvalidReference as exc:
        raise ApiError("DIGEST_INVALID", str(exc)) from None


def _accepted(req: Request) -> set[str] | None:
    """The media types the client accepts; ``None``: anything (no ``Accept``, or ``*/*``)."""
    values = req.headers.get_all("Accept") or []
    types = {part.split(";", 1)[0].strip() for value in values for part in value.split(",")}
    types.discard("")
    if not types or "*/*" in types:
        return None
    return types


def _page(req: Request) -> tuple[int, str | None]:
    raw = req.arg("n")
    if raw is None or raw == "":
        return MAX_PAGE, req.arg("last")
    if not raw.isdigit():
        raise ApiError("PAGINATION_NUMBER_INVALID", f"invalid number of results: {raw!r}", 400)
    return min(int(raw), MAX_PAGE), req.arg("last")


def _paginate(items: list[str], req: Request, path: str, n: int, last: str | None) -> tuple[list[str], dict[str, str]]:
    if last:
        items = [i for i in items if i > last]
    page = items[:n]
    headers = {}
    if len(items) > n and page:
        headers["Link"] = f'<{path}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
    return page, headers


class ReadSide:
    """:class:`lfsreg.serve.router.ReadRoutes` over a :class:`ServeContext`."""

    def __init__(self, ctx: ServeContext, blobs: BlobReader, gate: SignatureGate | None = None) -> None:
        self.ctx = ctx
        self.blobs = blobs
        self.gate = gate  # --require-signatures: the trust policy decides what is served

    def base(self, req: Request) -> Response:
        """``/v2/``: 200 and an empty JSON object."""
        return Response.json(b"{}")

    def catalog(self, req: Request) -> Response:
        """The repository names, sorted, paginated."""
        n, last = _page(req)
        with self.ctx.reading() as view:
            names: list[str] = self.ctx.memo(view, "catalog", lambda: [] if view.empty else list(view.names()))
        page, headers = _paginate(names, req, "/v2/_catalog", n, last)
        return Response.json(dump_json({"repositories": page}), headers=headers)

    def tags(self, req: Request) -> Response:
        """The tags of a name, sorted, paginated; ``NAME_UNKNOWN`` for a name without tags."""
        name = req.params["name"]
        n, last = _page(req)
        with self.ctx.reading() as view:
            tags = [] if view.empty else [t for t, _ in view.tags(name)]
        if not tags:
            raise ApiError("NAME_UNKNOWN", f"repository {name} is not known to the registry")
        page, headers = _paginate(tags, req, f"/v2/{name}/tags/list", n, last)
        return Response.json(dump_json({"name": name, "tags": page}), headers=headers)

    def get_manifest(self, req: Request) -> Response:
        """A manifest or index by tag or digest, as stored (see the module docstring for ``Accept``)."""
        name, reference = req.params["name"], req.params["reference"]
        if ":" in reference:
            ref = ImageRef(name, digest=parse_digest(reference))
        else:
            try:
                ref = ImageRef(name, tag=validate_tag(reference))
            except InvalidReference as exc:
                raise ApiError("TAG_INVALID", str(exc)) from None
        accepted = _accepted(req)
        with self.ctx.reading() as view:
            if view.empty:
                raise ApiError("MANIFEST_UNKNOWN", f"manifest unknown: {ref}")
            digest = view.resolve(ref)
            data, media_type = self._manifest(view, digest, str(ref))
            if accepted is not None and media_type not in accepted:
                digest, data, media_type = self._fallback(view, str(ref), data, media_type, accepted)
            if self.gate is not None:
                self.gate.check(view, ref, digest)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": str(digest), "ETag": f'"{digest}"'}
        return Response(200, headers, data)

    def _manifest(self, view: RegistryView, digest: Digest, what: str) -> tuple[bytes, str]:
        data = view.blob(digest)
        try:
            obj = load_json(data, what)
        except LfsregError:
            raise ApiError("MANIFEST_UNKNOWN", f"{digest} is not a manifest") from None
        # a config (or any JSON blob) has no mediaType: only the shape of a manifest or index counts
        shaped = isinstance(obj.get("mediaType"), str) or "manifests" in obj or ("config" in obj and "layers" in obj)
        media_type = sniff_media_type(obj)
        if not shaped or not (mt.is_manifest(media_type) or mt.is_index(media_type)):
            raise ApiError("MANIFEST_UNKNOWN", f"{digest} is not a manifest ({media_type})")
        return data, media_type

    def _fallback(self, view: RegistryView, what: str, data: bytes, media_type: str, accepted: set[str]) -> tuple[Digest, bytes, str]:
        """What a client that does not accept ``media_type`` gets: an index's image manifest it accepts, else 404."""
        if mt.is_index(media_type):
            index = parse_manifest(data, what)
            children = [d for d in getattr(index, "manifests", ()) if d.media_type in accepted]
            chosen = next((d for d in children if d.platform() == _FALLBACK_PLATFORM), children[0] if children else None)
            if chosen is not None:
                child, child_type = self._manifest(view, chosen.digest, f"{what} ({chosen.platform()})")
                return chosen.digest, child, child_type
        raise ApiError(
            "MANIFEST_UNKNOWN",
            f"{what} is a {media_type}, which the request's Accept header does not accept",
            detail={"mediaType": media_type, "accepted": sorted(accepted)},
        )

    def get_blob(self, req: Request) -> Response:
        """A blob by digest (:class:`lfsreg.serve.blobs.BlobReader`)."""
        return self.blobs.get(req, parse_digest(req.params["digest"]))

    def referrers(self, req: Request) -> Response:
        """The manifests of a name whose ``subject`` is the digest, as an OCI index (empty if none)."""
        name = req.params["name"]
        subject = parse_digest(req.params["digest"])
        wanted = req.arg("artifactType")
        with self.ctx.reading() as view:
            found: list[dict[str, Any]] = (
                [] if view.empty else self.ctx.memo(view, f"referrers {name} {subject}", lambda: referrers_of(view, name, subject))
            )
        headers = {}
        if wanted:
            found = [d for d in found if d.get("artifactType") == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = dump_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found})
        return Response(200, {"Content-Type": mt.OCI_INDEX, **headers}, body)


def referrers_of(view: RegistryView, name: str, subject: Digest) -> list[dict[str, Any]]:
    """Descriptors of the manifests of ``name`` whose subject is ``subject``, sorted by digest.

    From the records under ``_referrers`` (what the write side records for every manifest with a
    subject) whose manifest is still stored. A damaged record is skipped: records are an index.
    """
    out: dict[str, dict[str, Any]] = {}
    directory = view.layout.referrers_dir(name, subject)
    for entry, is_dir, sha in view.snapshot.listdir(directory):
        if is_dir:
            continue
        try:
            record = load_json(view.snapshot.blob(sha, f"{directory}/{entry}"), f"{directory}/{entry}")
            digest = Digest.parse(str(record.get("digest")))
        except (LfsregError, json.JSONDecodeError):
            continue
        if digest.hex != entry or not isinstance(record.get("size"), int) or not view.has_blob(digest):
            continue
        out[str(digest)] = record
    return [out[k] for k in sorted(out)]


__all__ = ["MAX_PAGE", "ReadSide", "parse_digest", "referrers_of"]
