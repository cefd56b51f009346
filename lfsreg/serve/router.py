"""Routing of the distribution API: which handler answers which method on which path.

Paths (distribution-spec v1.1, "Endpoints"); ``<name>`` may hold slashes, so routes match from
the end of the path:

=======================================================  ==========================  ======
path                                                     methods                     side
=======================================================  ==========================  ======
``/v2/``                                                 GET                         read
``/v2/_catalog``                                         GET                         read
``/v2/<name>/tags/list``                                 GET                         read
``/v2/<name>/manifests/<reference>``                     GET; PUT, DELETE            both
``/v2/<name>/blobs/<digest>``                            GET; DELETE                 both
``/v2/<name>/blobs/uploads/``                            POST                        write
``/v2/<name>/blobs/uploads/<session>``                   GET, PATCH, PUT, DELETE     write
``/v2/<name>/referrers/<digest>``                        GET                         read
=======================================================  ==========================  ======

``HEAD`` goes wherever ``GET`` goes. Every request is authorised first (:class:`Authorizer`:
``read`` or ``write`` access), then its name is validated, then its handler runs. The write
side plugs in as one object implementing :class:`WriteRoutes`; without one (a read-only
listen) write requests are answered ``DENIED``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..digest import Digest
from ..errors import InvalidReference, LfsregError
from ..formats.lfs_pointer import LfsObject
from ..reference import validate_name
from .errors import ApiError, from_lfsreg
from .http import Request, Response

Handler = Callable[[Request], Response]
READ, WRITE = "read", "write"


class ReadRoutes(Protocol):
    """The read side (:mod:`lfsreg.serve.read`); each method also answers ``HEAD``."""

    def base(self, req: Request) -> Response:
        """``GET /v2/``."""
        ...

    def catalog(self, req: Request) -> Response:
        """``GET /v2/_catalog?n=&last=``."""
        ...

    def tags(self, req: Request) -> Response:
        """``GET /v2/<name>/tags/list?n=&last=``."""
        ...

    def get_manifest(self, req: Request) -> Response:
        """``GET /v2/<name>/manifests/<reference>`` (tag or digest)."""
        ...

    def get_blob(self, req: Request) -> Response:
        """``GET /v2/<name>/blobs/<digest>``, with ``Range``."""
        ...

    def referrers(self, req: Request) -> Response:
        """``GET /v2/<name>/referrers/<digest>?artifactType=``."""
        ...


class WriteRoutes(Protocol):
    """The write side (:mod:`lfsreg.serve.write`): one object, one method per write endpoint.

    Each method gets the :class:`Request` with ``params`` filled (``name`` always, validated;
    ``reference``, ``digest`` or ``session`` as the path has them, unvalidated) and the client
    already authorised for ``write``. It returns a :class:`Response` or raises
    :class:`lfsreg.serve.errors.ApiError` / an :class:`lfsreg.errors.LfsregError` (mapped by
    :func:`lfsreg.serve.errors.from_lfsreg`). It reads the request body from ``req.body``.
    Methods may be called from many threads at once.
    """

    def start_upload(self, req: Request) -> Response:
        """``POST /v2/<name>/blobs/uploads/`` (``?digest=`` monolithic, ``?mount=&from=`` cross-repository mount)."""
        ...

    def upload_chunk(self, req: Request) -> Response:
        """``PATCH /v2/<name>/blobs/uploads/<session>`` (``Content-Range``, or un-ranged streamed)."""
        ...

    def finish_upload(self, req: Request) -> Response:
        """``PUT /v2/<name>/blobs/uploads/<session>?digest=`` (with or without a last chunk)."""
        ...

    def upload_status(self, req: Request) -> Response:
        """``GET /v2/<name>/blobs/uploads/<session>`` (204 with ``Range``)."""
        ...

    def cancel_upload(self, req: Request) -> Response:
        """``DELETE /v2/<name>/blobs/uploads/<session>``."""
        ...

    def put_manifest(self, req: Request) -> Response:
        """``PUT /v2/<name>/manifests/<reference>`` (tag or digest; ``subject`` -> ``OCI-Subject``)."""
        ...

    def delete_manifest(self, req: Request) -> Response:
        """``DELETE /v2/<name>/manifests/<reference>`` (a digest: the manifest; a tag: the tag)."""
        ...

    def delete_blob(self, req: Request) -> Response:
        """``DELETE /v2/<name>/blobs/<digest>``."""
        ...

    def staged_blob(self, digest: Digest) -> LfsObject | None:
        """A blob uploaded (and stored in LFS) that no commit names yet, else ``None``.

        The read side asks it for a blob ``GET``/``HEAD`` the tree does not hold (a client may read a
        blob back right after uploading it, before its manifest is put). Cheap; called from many threads.
        """
        ...


class Authorizer(Protocol):
    """Who may do what (:mod:`lfsreg.serve.auth`)."""

    def authorize(self, req: Request, access: str) -> str | None:
        """The user ``req`` authenticates as, if it may have ``access``; else raise :class:`ApiError` (401/403)."""
        ...


@dataclass(frozen=True)
class Route:
    """A path pattern and, per method, the access it needs and the name of its handler method."""

    pattern: re.Pattern[str]
    methods: dict[str, tuple[str, str]]


_NAME = r"(?P<name>.+)"
ROUTES = [
    Route(re.compile(r"/v2/?"), {"GET": (READ, "base")}),
    Route(re.compile(r"/v2/_catalog"), {"GET": (READ, "catalog")}),
    Route(re.compile(rf"/v2/{_NAME}/tags/list"), {"GET": (READ, "tags")}),
    Route(
        re.compile(rf"/v2/{_NAME}/manifests/(?P<reference>[^/]+)"),
        {"GET": (READ, "get_manifest"), "PUT": (WRITE, "put_manifest"), "DELETE": (WRITE, "delete_manifest")},
    ),
    Route(re.compile(rf"/v2/{_NAME}/blobs/uploads/?"), {"POST": (WRITE, "start_upload")}),
    Route(
        re.compile(rf"/v2/{_NAME}/blobs/uploads/(?P<session>[^/]+)"),
        {
            "GET": (WRITE, "upload_status"),
            "PATCH": (WRITE, "upload_chunk"),
            "PUT": (WRITE, "finish_upload"),
            "DELETE": (WRITE, "cancel_upload"),
        },
    ),
    Route(re.compile(rf"/v2/{_NAME}/blobs/(?P<digest>[^/]+)"), {"GET": (READ, "get_blob"), "DELETE": (WRITE, "delete_blob")}),
    Route(re.compile(rf"/v2/{_NAME}/referrers/(?P<digest>[^/]+)"), {"GET": (READ, "referrers")}),
]


class Router:
    """Dispatches a :class:`Request` to the read or the write side (see the module docstring)."""

    def __init__(self, read: ReadRoutes, write: WriteRoutes | None, auth: Authorizer) -> None:
        self.read = read
        self.write = write
        self.auth = auth

    def __call__(self, req: Request) -> Response:
        """Answer ``req``: authorise, validate the name, run the handler; errors in the spec's form."""
        route, match = _match(req.path)
        if route is None or match is None:
            raise ApiError("NOT_FOUND", f"no such endpoint: {req.path}", 404)
        method = "GET" if req.method == "HEAD" and "GET" in route.methods else req.method
        if method not in route.methods:
            allow = ", ".join(sorted({*route.methods, "HEAD"} if "GET" in route.methods else route.methods))
            raise ApiError("UNSUPPORTED", f"{req.method} is not supported on {req.path}", 405, headers={"Allow": allow})
        access, handler_name = route.methods[method]
        req.user = self.auth.authorize(req, access)
        req.params = {k: v for k, v in match.groupdict().items() if v is not None}
        if "name" in req.params:
            try:
                validate_name(req.params["name"])
            except InvalidReference as exc:
                raise ApiError("NAME_INVALID", str(exc)) from None
        side: object = self.read if access == READ else self.write
        if side is None:
            raise ApiError("DENIED", "this registry is served read-only", 403)
        handler: Handler = getattr(side, handler_name)
        try:
            return handler(req)
        except LfsregError as exc:
            raise from_lfsreg(exc, manifest=handler_name.endswith("manifest")) from None


def _match(path: str) -> tuple[Route | None, re.Match[str] | None]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None:
            return route, match
    return None, None


__all__ = ["READ", "ROUTES", "WRITE", "Authorizer", "ReadRoutes", "Route", "Router", "WriteRoutes"]
