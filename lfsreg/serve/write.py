"""The write side of ``lfsreg serve``: blob uploads, manifest puts and deletes (distribution-spec v1.1, "Push").

One :class:`WriteSide` implements :class:`lfsreg.serve.router.WriteRoutes`. Blobs go through
:class:`lfsreg.serve.uploads.Uploads` into the registry's LFS store; a manifest ``PUT`` is one
commit (:func:`lfsreg.ops.publish.put_manifest`), after which every client of the registry
sees its tag. Status codes, headers and error codes are the spec's:

==================================  ======  ============================================================
request                             status  headers
==================================  ======  ============================================================
POST uploads/                       202     Location, Range: 0-0, Docker-Upload-UUID
POST uploads/?digest=               201     Location (the blob), Docker-Content-Digest
POST uploads/?mount=&from=          201     (blob present) as above; else 202 and a new session
PATCH uploads/<id>                  202     Location, Range: 0-<last byte>, Docker-Upload-UUID
GET uploads/<id>                    204     Location, Range, Docker-Upload-UUID
PUT uploads/<id>?digest=            201     Location (the blob), Docker-Content-Digest
DELETE uploads/<id>                 204
PUT manifests/<tag|digest>          201     Location, Docker-Content-Digest, OCI-Subject (with a subject)
DELETE manifests/<tag|digest>       202
DELETE blobs/<digest>               202
==================================  ======  ============================================================

Errors: ``BLOB_UPLOAD_UNKNOWN`` (404), ``BLOB_UPLOAD_INVALID`` (400; 416 with ``Range`` for a
chunk out of order), ``DIGEST_INVALID`` (400), ``MANIFEST_INVALID`` (400), ``MANIFEST_BLOB_UNKNOWN``
(400, as the distribution registry answers), ``TAG_INVALID`` (400), ``SIZE_INVALID`` (413: a
manifest over :data:`lfsreg.ops.publish.MAX_MANIFEST`), ``MANIFEST_UNKNOWN``/``BLOB_UNKNOWN``
(404) for deletes, ``DENIED`` (403) for a blob another repository's image uses, and for a blob
upload or a manifest put that would take the registry over ``limits.storage`` (uploaded blobs
no commit names yet are not billed, so a manifest's new layers are checked together before
its commit). A read-only server never gets here: the router answers ``DENIED``.
"""

from __future__ import annotations

import logging

from ..digest import Digest
from ..errors import BlobNotFound, InvalidReference, LimitExceededError, PermissionDeniedError
from ..formats.lfs_pointer import LfsObject
from ..ops import delete, publish
from ..ops.usage import memo_file
from ..reference import validate_name, validate_tag
from ..registry.config import Limits, read_limits
from .errors import ApiError
from .http import Request, Response
from .state import ServeContext
from .uploads import DEFAULT_EXPIRY, DigestInvalid, UploadInvalid, Uploads, UploadUnknown, parse_digest, parse_range

log = logging.getLogger(__name__)


def _upload_location(name: str, session: str) -> str:
    return f"/v2/{name}/blobs/uploads/{session}"


def _session_headers(name: str, session: str, offset: int) -> dict[str, str]:
    # The distribution registry answers "0-0" for an empty session too (there is no empty inclusive range).
    return {"Location": _upload_location(name, session), "Range": f"0-{max(offset - 1, 0)}", "Docker-Upload-UUID": session}


def _blob_created(name: str, digest: Digest) -> Response:
    return Response(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)})


def _digest(text: str | None) -> Digest:
    try:
        return parse_digest(text)
    except DigestInvalid as exc:
        raise ApiError("DIGEST_INVALID", str(exc)) from None


class WriteSide:
    """The write routes of one server (see the module docstring). Thread-safe."""

    def __init__(self, ctx: ServeContext, *, expiry: float = DEFAULT_EXPIRY) -> None:
        self.ctx = ctx
        self.publisher = ctx.registry.publisher()
        self._memo = memo_file(ctx.registry.options.cache_dir, self.publisher.backend.git)
        self.uploads = Uploads(ctx.lfs, expiry=expiry, keep=self._keep)

    def _check_storage(self, objects: list[LfsObject], outcome: str) -> Limits:
        """The registry's limits; ``DENIED`` (403) if naming ``objects`` would go over ``limits.storage``."""
        with self.ctx.reading() as view:  # the served view: no ref query per blob for a remote registry
            limits = Limits() if view.empty else read_limits(view)
            try:
                publish.check_upload_storage(self.publisher, view, objects, limits.storage, self._memo, outcome=outcome)
            except LimitExceededError as exc:
                raise ApiError("DENIED", str(exc), 403) from None
        return limits

    def _check_commit_storage(self, objects: list[LfsObject]) -> None:
        self._check_storage(objects, "nothing was committed")

    def _keep(self, obj: LfsObject, path: str) -> bool:
        """Store a verified upload: refused over ``limits.storage``, in chunks over ``limits.object``."""
        limits = self._check_storage([obj], "nothing was uploaded")
        whole = publish.store_upload(self.publisher, self.ctx.lfs, obj, path, limits.object, guard=self.ctx.git_lock)
        if not whole:
            self.ctx.invalidate()  # its chunks were committed
        return whole

    # -- what the read side asks -------------------------------------------------------------
    def staged_blob(self, digest: Digest) -> LfsObject | None:
        """A blob uploaded into LFS through this server that no commit names yet."""
        return self.uploads.staged(digest)

    # -- uploads ------------------------------------------------------------------------------
    def _session(self, req: Request) -> tuple[str, str]:
        return req.params["name"], req.params["session"]

    def _in_registry(self, digest: Digest) -> bool:
        if self.uploads.staged(digest) is not None:
            return True
        with self.ctx.reading() as view:
            return not view.empty and (view.has_blob(digest) or view.has_layer(digest))

    def start_upload(self, req: Request) -> Response:
        """``POST``: a new session; ``?digest=`` the whole blob at once; ``?mount=&from=`` a blob the registry holds."""
        name = req.params["name"]
        mount = req.arg("mount")
        if mount is not None:
            digest = _digest(mount)
            source = req.arg("from")
            # One store holds every repository's blobs: a blob is mountable when the registry has it
            # (``from`` is only checked to be a name; the spec lets a registry ignore it).
            if (source is None or _valid_name(source)) and self._in_registry(digest):
                return _blob_created(name, digest)
        text = req.arg("digest")
        if text is not None:
            digest = _digest(text)
            with _upload_errors(name, None):
                self.uploads.monolithic(digest, req.body, req.body.length)
            return _blob_created(name, digest)
        with _upload_errors(name, None):
            session = self.uploads.start(name)
        return Response(202, _session_headers(name, session, 0))

    def upload_chunk(self, req: Request) -> Response:
        """``PATCH``: append a chunk (``Content-Range``) or a whole streamed body."""
        name, session = self._session(req)
        with _upload_errors(name, session):
            offset = self.uploads.append(name, session, req.body, req.body.length, parse_range(req.headers.get("Content-Range")))
        return Response(202, _session_headers(name, session, offset))

    def upload_status(self, req: Request) -> Response:
        """``GET`` on a session: its offset, as ``Range``."""
        name, session = self._session(req)
        with _upload_errors(name, session):
            offset = self.uploads.offset(name, session)
        return Response(204, _session_headers(name, session, offset))

    def finish_upload(self, req: Request) -> Response:
        """``PUT ?digest=``: the last chunk (if any), then the blob is checked and stored in LFS."""
        name, session = self._session(req)
        digest = _digest(req.arg("digest"))
        with _upload_errors(name, session):
            crange = parse_range(req.headers.get("Content-Range"))
            self.uploads.finish(name, session, digest, req.body, req.body.length, crange)
        return _blob_created(name, digest)

    def cancel_upload(self, req: Request) -> Response:
        """``DELETE`` on a session: it and its bytes are dropped."""
        name, session = self._session(req)
        with _upload_errors(name, session):
            self.uploads.cancel(name, session)
        return Response(204)

    # -- manifests ----------------------------------------------------------------------------
    def put_manifest(self, req: Request) -> Response:
        """``PUT manifests/<tag|digest>`` (``?tag=`` adds tags to a put by digest): one commit."""
        name = req.params["name"]
        digest, tags = _reference(req.params["reference"])
        if digest is not None:
            tags = [_tag(t) for t in req.query.get("tag", [])]
        length = req.body.length
        if length is not None and length > publish.MAX_MANIFEST:
            raise ApiError("SIZE_INVALID", f"manifest of {length} bytes is over the {publish.MAX_MANIFEST} accepted", 413)
        data = req.body.read(publish.MAX_MANIFEST + 1)
        if len(data) > publish.MAX_MANIFEST:
            raise ApiError("SIZE_INVALID", f"manifest is over the {publish.MAX_MANIFEST} bytes accepted", 413)
        if digest is not None and Digest.of_bytes(data) != digest:
            raise ApiError("DIGEST_INVALID", f"the manifest's bytes are {Digest.of_bytes(data)}, not {digest}")
        try:
            result = publish.put_manifest(
                self.publisher,
                self.ctx.lfs,
                name,
                data,
                req.headers.get("Content-Type"),
                tags=tags,
                digest=digest,
                guard=self.ctx.git_lock,
                before_commit=self._check_commit_storage,
            )
        except BlobNotFound as exc:
            raise ApiError("MANIFEST_BLOB_UNKNOWN", str(exc), 400) from None
        for stored in result.stored:  # the tree names them now: no need to remember them
            self.uploads.forget(stored)
        if result.commit is not None:
            self.ctx.invalidate()
            log.info("%s: %s %s -> commit %s", name, ",".join(tags) or "untagged", result.digest, result.commit)
        headers = {"Location": f"/v2/{name}/manifests/{result.digest}", "Docker-Content-Digest": str(result.digest)}
        if result.subject is not None:
            headers["OCI-Subject"] = str(result.subject)
        return Response(201, headers)

    def delete_manifest(self, req: Request) -> Response:
        """``DELETE manifests/<digest>`` (the manifest and the name's tags of it) or ``<tag>`` (the tag)."""
        name = req.params["name"]
        _never_stored(req.params["reference"], "MANIFEST_UNKNOWN")
        digest, tags = _reference(req.params["reference"])
        if digest is not None:
            delete.delete_manifest(self.publisher, name, digest, guard=self.ctx.git_lock)
        else:
            delete.delete_tag(self.publisher, name, tags[0], guard=self.ctx.git_lock)
        self.ctx.invalidate()
        return Response(202)

    def delete_blob(self, req: Request) -> Response:
        """``DELETE blobs/<digest>``: unlinked from the tree (and from this server's staged uploads)."""
        name = req.params["name"]
        _never_stored(req.params["digest"], "BLOB_UNKNOWN")
        digest = _digest(req.params["digest"])
        staged = self.uploads.forget(digest)
        try:
            delete.delete_blob(self.publisher, name, digest, guard=self.ctx.git_lock)
        except BlobNotFound:
            if not staged:
                raise ApiError("BLOB_UNKNOWN", f"blob unknown to registry: {digest}") from None
        except PermissionDeniedError as exc:
            raise ApiError("DENIED", str(exc), 403) from None
        self.ctx.invalidate()
        return Response(202)

    def close(self) -> None:
        """Drop the sessions in progress (the server stops)."""
        self.uploads.close()


def _valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidReference:
        return False
    return True


def _never_stored(reference: str, unknown: str) -> None:
    """A well-formed digest of another algorithm than sha256 names nothing stored here: 404, as for any absent digest."""
    try:
        digest = Digest.parse(reference) if ":" in reference else None
    except InvalidReference:
        return  # malformed: DIGEST_INVALID, from the parse that follows
    if digest is not None and digest.algorithm != "sha256":
        raise ApiError(unknown, f"{digest.algorithm} digests are not stored here (sha256 only): {reference[:100]}")


def _tag(text: str) -> str:
    try:
        return validate_tag(text)
    except InvalidReference as exc:
        raise ApiError("TAG_INVALID", str(exc), 400) from None


def _reference(text: str) -> tuple[Digest | None, list[str]]:
    """A manifest reference: ``(digest, [])`` or ``(None, [tag])``."""
    if ":" in text:
        return _digest(text), []
    return None, [_tag(text)]


class _upload_errors:  # noqa: N801 -- used as a context manager, named for what it does
    """Maps the upload store's errors to the spec's (with the session's ``Range`` where it helps the client)."""

    def __init__(self, name: str, session: str | None) -> None:
        self.name = name
        self.session = session

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, UploadUnknown):
            raise ApiError("BLOB_UPLOAD_UNKNOWN", str(exc)) from None
        if isinstance(exc, DigestInvalid):
            raise ApiError("DIGEST_INVALID", str(exc)) from None
        if isinstance(exc, UploadInvalid):
            headers = _session_headers(self.name, self.session, exc.offset) if self.session else {}
            raise ApiError("BLOB_UPLOAD_INVALID", str(exc), 416 if exc.out_of_order else 400, headers=headers) from None


__all__ = ["WriteSide"]
