"""A fault-injecting Git LFS server for tests (stdlib only).

It speaks the Git LFS batch API and the ``basic`` transfer adapter as documented by git-lfs
(``docs/api/batch.md``, ``basic-transfers.md``, ``authentication.md``) and, like git-lfs's own
``t/cmd/lfstest-gitserver.go``, can misbehave on purpose -- but the misbehaviour is scripted per
test, per object and per operation, instead of being keyed on magic file contents::

    with FaultLfsServer(credentials=("alice", "s3cret")) as server:
        oid = server.add_object(b"layer bytes")
        server.script(oid, "download", [Fault.status(503, retry_after=0), Fault.cut(4), Fault.ok()])
        client = MyClient(server.endpoint("team/repo.git"), auth=server.credentials)
        ...
        assert server.attempts(oid, "download") == 3
        assert server.ranges(oid) == [None, None, "bytes=4-10"]

Routes (one server, ``http://127.0.0.1:PORT``):

* ``POST /<repo>/info/lfs/objects/batch`` -- the batch API; :meth:`FaultLfsServer.endpoint`
  gives ``http://127.0.0.1:PORT/<repo>/info/lfs``. ``<repo>`` may contain slashes.
* ``GET /storage/<oid>`` (download, honours ``Range: bytes=N-`` / ``bytes=N-M``) and
  ``PUT /storage/<oid>`` (upload, streamed to disk and checked against the oid and size).
* ``POST /verify`` -- the ``verify`` action (``{"oid": ..., "size": ...}``).
* ``POST /<repo>/info/lfs/locks/verify`` and ``GET /<repo>/info/lfs/locks`` answer "no locks"
  so that a stock ``git push`` does not complain.

Operations, as used by :meth:`FaultLfsServer.script` and the counters:

* ``"batch"`` -- an object's entry in a batch response (faults: ok, object_error, expired);
* ``"download"`` / ``"upload"`` / ``"verify"`` -- requests to the action hrefs.

Whole batch calls are scripted separately with :meth:`FaultLfsServer.script_batch`.

Every action carries its own ``header`` (``Authorization: RemoteAuth <token>``); the token is
bound to one oid and one operation. The server checks it on the storage and verify routes
(unless ``action_auth=False``), so a client that sends its Basic credentials there instead
gets 401. Objects live in a temporary directory (uploads are streamed, never held in memory).

The package: :mod:`fault_lfs.faults` is the catalogue of scripted misbehaviours
(:class:`Fault`, :class:`FaultKind`, where each applies), :mod:`fault_lfs.server` the server's
life cycle and addresses, composed of :mod:`fault_lfs.store` (objects on disk),
:mod:`fault_lfs.scripts` (scripted faults, read-only repositories, action tokens) and
:mod:`fault_lfs.observations` (what tests observe of it); :mod:`fault_lfs.handler` its routes
over the HTTP plumbing of :mod:`fault_lfs.plumbing`, :mod:`fault_lfs.wire` the records and
limits they share.
"""

from fault_lfs.faults import Fault, FaultKind
from fault_lfs.server import FaultLfsServer
from fault_lfs.wire import LFS_MEDIA_TYPE, OPERATIONS, RecordedRequest

__all__ = ["LFS_MEDIA_TYPE", "OPERATIONS", "Fault", "FaultKind", "FaultLfsServer", "RecordedRequest"]
