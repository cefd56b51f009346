"""The fault server's routes: batch API, locks, storage (download/upload) and verify, each faulted as scripted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from fault_lfs.faults import Fault, FaultKind
from fault_lfs.plumbing import Plumbing
from fault_lfs.wire import CHUNK, LFS_MEDIA_TYPE, OID_RE, RANGE_RE, Cut, RecordedRequest, Ticket

_BATCH_RE = re.compile(r"\A/(?P<repo>.+?)/info/lfs/objects/batch\Z")
_LOCKS_RE = re.compile(r"\A/(?P<repo>.+?)/info/lfs/locks(?P<verify>/verify)?\Z")
_STORAGE_RE = re.compile(r"\A/storage/(?P<oid>[^/]+)\Z")


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class Handler(Plumbing):
    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in ("authorization", "proxy-authorization"):
                value = self.lfs.redact_authorization(value)
            headers[key] = value if key not in headers else f"{headers[key]}, {value}"
        self.rec = RecordedRequest(self.command, path, url.query, headers)
        self.lfs._record(self.rec)
        self._start_body()
        try:
            if m := _BATCH_RE.match(path):
                self.rec.operation, self.rec.repo = "batch", m["repo"]
                if self._method_is("POST"):
                    self._batch(m["repo"])
            elif m := _LOCKS_RE.match(path):
                self.rec.operation, self.rec.repo = "locks", m["repo"]
                self._locks(m["repo"], bool(m["verify"]))
            elif m := _STORAGE_RE.match(path):
                self.rec.oid = m["oid"]
                if self.command == "GET":
                    self.rec.operation = "download"
                    self._download(m["oid"])
                elif self._method_is("PUT"):
                    self.rec.operation = "upload"
                    self._upload(m["oid"])
            elif path == "/verify":
                self.rec.operation = "verify"
                if self._method_is("POST"):
                    self._verify()
            else:
                self._error(404, f"no route for {self.command} {path}")
        except Cut:
            self._close_now()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _apply_generic(self, fault: Fault, *, batch: bool = False) -> bool:
        """Sleep ``fault.delay``; answer a status/raw/cut fault. True when it answered."""
        self.rec.fault = fault.kind if fault.kind is not FaultKind.OK else None
        self._pause(fault.delay)
        if fault.kind is FaultKind.STATUS:
            assert fault.code is not None
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if batch and fault.code == 401:
                headers.setdefault("LFS-Authenticate", 'Basic realm="Git LFS"')
            self._error(fault.code, fault.message or f"scripted status {fault.code}", headers)
            return True
        if fault.kind is FaultKind.RAW:
            assert fault.code is not None
            self._send(fault.code, fault.body or b"", dict(fault.headers))
            return True
        if fault.kind is FaultKind.CUT and self.rec.operation != "download":
            for _ in self._body(fault.after_bytes if self.rec.operation == "upload" else None):
                pass
            raise Cut
        return False

    # -- batch -----------------------------------------------------------------------------------
    def _authorised(self) -> bool:
        creds = self.lfs.credentials
        if creds is None:
            return True
        expected = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        got = (self.headers.get("Authorization") or "").strip()
        if got and hmac.compare_digest(got.encode(), expected.encode()):
            return True
        self._error(401, "Credentials needed", {"LFS-Authenticate": 'Basic realm="Git LFS"'})
        return False

    def _media_types_ok(self) -> bool:
        if not self.lfs.strict_media_types:
            return True
        accept = [_media_type(part) for part in (self.headers.get("Accept") or "").split(",")]
        if LFS_MEDIA_TYPE not in accept:
            self._error(406, f"Accept must include {LFS_MEDIA_TYPE}")
            return False
        if _media_type(self.headers.get("Content-Type")) != LFS_MEDIA_TYPE:
            self._error(415, f"Content-Type must be {LFS_MEDIA_TYPE}")
            return False
        return True

    def _batch(self, repo: str) -> None:
        lfs = self.lfs
        body, problem = self._read_json_body()
        with lfs._lock:
            lfs._batch_calls += 1
            if body is not None:
                lfs._batch_bodies.append(body)
                lfs._batch_records.append((self.rec, body))
        if not self._authorised() or not self._media_types_ok():
            return
        problem = problem or _batch_problem(body)
        if problem:
            self._error(422, problem)
            return
        operation = body["operation"]
        if self._apply_generic(lfs._next_batch_fault(operation), batch=True):
            return
        with lfs._lock:
            ro_mode = lfs._read_only.get(repo)
        if operation == "upload" and ro_mode == "batch":
            self._error(403, f"{repo}: you have read access but not write access")
            return
        bad_algo = body.get("hash_algo", "sha256") not in (None, "sha256")
        objects = []
        for obj in body["objects"]:
            oid, size = obj.get("oid"), obj.get("size")
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if isinstance(oid, str):
                with lfs._lock:
                    lfs._attempts[(oid, "batch")] += 1
            if not isinstance(oid, str) or not OID_RE.match(oid):
                entry["error"] = {"code": 422, "message": f"invalid oid {oid!r}"}
            elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
                entry["error"] = {"code": 422, "message": f"invalid size {size!r}"}
            elif bad_algo:
                entry["error"] = {"code": 409, "message": f"unsupported hash_algo {body['hash_algo']!r}"}
            else:
                entry.update(self._batch_entry(repo, operation, oid, size, ro_mode))
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _batch_entry(self, repo: str, operation: str, oid: str, size: int, ro_mode: str | None) -> dict[str, Any]:
        lfs = self.lfs
        fault = lfs._next_fault(oid, "batch")
        if fault.kind is FaultKind.OBJECT_ERROR:
            return {"error": {"code": fault.code, "message": fault.message}}
        stored = lfs.object_size(oid)
        if stored is not None and stored != size:
            return {"error": {"code": 422, "message": f"size {size} does not match the stored object ({stored} bytes)"}}
        if operation == "download":
            if stored is None:
                return {"error": {"code": 404, "message": "Object does not exist"}}
            return {"authenticated": True, "actions": {"download": lfs._issue(oid, "download", size, repo, fault)}}
        if ro_mode == "object":
            return {"error": {"code": 403, "message": f"{repo}: you have read access but not write access"}}
        if stored is not None:
            return {"authenticated": True}  # already there: no actions
        return {
            "authenticated": True,
            "actions": {
                "upload": lfs._issue(oid, "upload", size, repo, fault),
                "verify": lfs._issue(oid, "verify", size, repo, fault),
            },
        }

    def _locks(self, repo: str, verify: bool) -> None:
        if verify:
            self._read_json_body()
            if self._method_is("POST") and self._authorised():
                self._json(200, {"ours": [], "theirs": []})
        elif self._method_is("GET") and self._authorised():
            self._json(200, {"locks": []})

    # -- transfers -------------------------------------------------------------------------------
    def _check_token(self, oid: str, operation: str) -> Ticket | Literal[False] | None:
        """The request's ticket; ``None`` when tokenless and allowed; False after answering."""
        value = (self.headers.get("Authorization") or "").strip()
        scheme, _, token = value.partition(" ")
        ticket = self.lfs._ticket(token.strip()) if scheme == "RemoteAuth" else None
        if ticket is None:
            if not self.lfs.action_auth:
                return None
            self._error(401, "missing or invalid action token (send the action's header)")
            return False
        if ticket.oid != oid or ticket.operation != operation:
            self._error(401, f"token was issued for {ticket.operation} of {ticket.oid}")
            return False
        self.rec.repo = ticket.repo
        if ticket.expired and ticket.reject_status is not None:
            self._error(ticket.reject_status, "action expired; request a new one from the batch API")
            return False
        return ticket

    def _count(self, oid: str, operation: str) -> None:
        with self.lfs._lock:
            self.lfs._attempts[(oid, operation)] += 1

    def _download(self, oid: str) -> None:
        lfs = self.lfs
        self._count(oid, "download")
        if self._check_token(oid, "download") is False:
            return
        fault = lfs._next_fault(oid, "download")
        if self._apply_generic(fault):
            return
        size = lfs.object_size(oid) if OID_RE.match(oid) else None
        if size is None:
            self._error(404, "Object does not exist")
            return
        if fault.kind is FaultKind.RANGE_NOT_SATISFIABLE:
            self._error(416, "scripted: range not satisfiable", {"Content-Range": f"bytes */{size}"})
            return
        start, end, code = 0, size - 1, 200
        m = RANGE_RE.match((self.headers.get("Range") or "").strip())
        if m and fault.kind is not FaultKind.IGNORE_RANGE:
            start = int(m["start"])
            end = min(int(m["end"]), size - 1) if m["end"] else size - 1
            if start >= size:
                self._error(416, f"range starts at {start}, object has {size} bytes", {"Content-Range": f"bytes */{size}"})
                return
            if end >= start:
                code = 206
            else:  # an invalid byte-range-spec: ignore the header (RFC 9110 14.1.1)
                start, end = 0, size - 1
        length = end - start + 1 if size else 0
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length), "Accept-Ranges": "bytes"}
        if code == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send_head(code, headers)
        self._stream(lfs.object_path(oid), start, length, fault)

    def _stream(self, path: Path, start: int, length: int, fault: Fault) -> None:
        limit = fault.after_bytes if fault.kind in (FaultKind.CUT, FaultKind.STALL) else None
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while sent < length:
                if limit is not None and sent >= limit:
                    if fault.kind is FaultKind.CUT:
                        raise Cut
                    self.wfile.flush()
                    self._pause(fault.pause)
                    limit = None
                want = min(CHUNK, length - sent)
                if limit is not None:
                    want = min(want, limit - sent)
                chunk = f.read(want)
                if not chunk:
                    break
                if sent == 0 and fault.kind is FaultKind.CORRUPT:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self._write(chunk)
                sent += len(chunk)
        if limit is not None and fault.kind is FaultKind.CUT:
            raise Cut  # after_bytes >= length: close right after the body anyway

    def _upload(self, oid: str) -> None:
        lfs = self.lfs
        self._count(oid, "upload")
        ticket = self._check_token(oid, "upload")
        if ticket is False:
            return
        if ticket is not None:
            with lfs._lock:
                read_only = ticket.repo in lfs._read_only
            if read_only:
                self._error(403, f"{ticket.repo}: you have read access but not write access")
                return
        if self._apply_generic(lfs._next_fault(oid, "upload")):
            return
        if not OID_RE.match(oid):
            self._error(422, f"invalid oid {oid!r}")
            return
        if not self._has_length():
            self._error(411, "Content-Length or chunked Transfer-Encoding required")
            self.close_connection = True
            return
        digest, received, tmp = hashlib.sha256(), 0, lfs._incoming()
        try:
            with open(tmp, "wb") as out:
                for chunk in self._body():
                    digest.update(chunk)
                    received += len(chunk)
                    out.write(chunk)
            problem = None
            if digest.hexdigest() != oid:
                problem = f"body hashes to {digest.hexdigest()}, not {oid}"
            elif ticket is not None and received != ticket.size:
                problem = f"body has {received} bytes, the batch request said {ticket.size}"
            if problem:
                self._error(422, problem)
                return
            lfs._commit_object(tmp, oid)
        finally:
            tmp.unlink(missing_ok=True)
        self._send(200, b"", {})

    def _verify(self) -> None:
        lfs = self.lfs
        body, problem = self._read_json_body()
        oid = body.get("oid") if isinstance(body, dict) else None
        self.rec.oid = oid if isinstance(oid, str) else None
        if isinstance(oid, str):
            self._count(oid, "verify")
        if not self._media_types_ok():
            return
        size = body.get("size") if isinstance(body, dict) else None
        if problem or not isinstance(oid, str) or not isinstance(size, int) or isinstance(size, bool):
            self._error(422, problem or 'verify body must be {"oid": str, "size": int}')
            return
        if self._check_token(oid, "verify") is False:
            return
        if self._apply_generic(lfs._next_fault(oid, "verify")):
            return
        stored = lfs.object_size(oid) if OID_RE.match(oid) else None
        if stored is None:
            self._error(404, "Object does not exist")
        elif stored != size:
            self._error(422, f"object has {stored} bytes, not {size}")
        else:
            self._send(200, b"", {})


def _batch_problem(body: Any) -> str | None:
    """Why a batch request body is invalid as a whole (HTTP 422), or ``None``."""
    if not isinstance(body, dict):
        return "batch request must be a JSON object"
    if body.get("operation") not in ("download", "upload"):
        return f"operation must be 'download' or 'upload', not {body.get('operation')!r}"
    transfers = body.get("transfers")
    if transfers is not None:
        if not isinstance(transfers, list) or not all(isinstance(t, str) for t in transfers):
            return "transfers must be an array of strings"
        if "basic" not in transfers:
            return f"no supported transfer adapter in {transfers!r} (this server only speaks 'basic')"
    objects = body.get("objects")
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        return "objects must be an array of {oid, size} objects"
    ref = body.get("ref")
    if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("name", ""), str)):
        return "ref must be {name: string} or null"
    if "hash_algo" in body and not isinstance(body["hash_algo"], (str, type(None))):
        return "hash_algo must be a string"
    return None
