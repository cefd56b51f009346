"""Who may read and write through ``lfsreg serve``: htpasswd (bcrypt) users or bearer tokens.

- No ``htpasswd`` and no ``token_file``: anyone may read; nobody may write.
- With either: every request must authenticate (``Authorization: Basic``, or ``Bearer TOKEN``;
  a token is also accepted as the password of Basic with any user name, so docker and podman
  logins work with it); authenticated clients may write unless ``read_only``.

401 answers carry ``WWW-Authenticate: Basic realm="lfsreg"``. Basic sends the password in the
clear on every request: anything but a loopback listen needs TLS in front (README).
bcrypt is slow on purpose, so a password that checked once is remembered (as a salted hash, in
memory) until the file changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading

from ..errors import UsageError
from .errors import ApiError
from .http import Request
from .router import WRITE

log = logging.getLogger(__name__)
CHALLENGE = {"WWW-Authenticate": 'Basic realm="lfsreg"'}


def _read_lines(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


class Access:
    """The access policy of one server (see the module docstring); thread-safe."""

    def __init__(self, *, htpasswd: str | None = None, token_file: str | None = None, read_only: bool = False) -> None:
        self.htpasswd = htpasswd
        self.token_file = token_file
        self.read_only = read_only
        self._lock = threading.Lock()
        self._users: dict[str, bytes] = {}
        self._tokens: list[bytes] = []
        self._stamp: tuple[object, ...] = ()
        self._checked: dict[tuple[str, bytes], bool] = {}
        self._salt = secrets.token_bytes(16)
        self._load()
        if htpasswd is not None and not self._users:
            raise UsageError(f"htpasswd file {htpasswd} names no user", hint="create one with: htpasswd -B -c FILE USER")
        if token_file is not None and not self._tokens:
            raise UsageError(f"token file {token_file} holds no token", hint="one token per line")

    @property
    def configured(self) -> bool:
        """Whether clients must authenticate."""
        return self.htpasswd is not None or self.token_file is not None

    @property
    def writable(self) -> bool:
        """Whether any client may write."""
        return self.configured and not self.read_only

    def _files_stamp(self) -> tuple[object, ...]:
        stamp: list[object] = []
        for path in (self.htpasswd, self.token_file):
            try:
                st = os.stat(path) if path else None
                stamp.append((st.st_mtime_ns, st.st_size, st.st_ino) if st else None)
            except OSError:
                stamp.append("gone")
        return tuple(stamp)

    def _load(self) -> None:
        """(Re)read the files when they changed since the last look."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return
        users: dict[str, bytes] = {}
        if self.htpasswd:
            for line in _read_lines(self.htpasswd, "htpasswd file"):
                user, colon, hashed = line.partition(":")
                if not colon or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                    log.warning("htpasswd file %s: ignoring a line that is not user:bcrypt-hash", self.htpasswd)
                    continue
                users[user] = hashed.encode()
        tokens = [t.encode() for t in _read_lines(self.token_file, "token file")] if self.token_file else []
        self._users, self._tokens, self._stamp, self._checked = users, tokens, stamp, {}

    def authorize(self, req: Request, access: str) -> str | None:
        """The user of ``req`` if it may have ``access`` (``"read"``/``"write"``); else raise 401 or 403."""
        if not self.configured:
            if access == WRITE:
                raise ApiError("DENIED", "this registry is served read-only (start lfsreg serve with --htpasswd or --token-file to write)")
            return None
        user = self._authenticate(req.headers.get("Authorization"))
        if user is None:
            raise ApiError("UNAUTHORIZED", "authentication required", headers=dict(CHALLENGE))
        if access == WRITE and self.read_only:
            raise ApiError("DENIED", "this registry is served read-only")
        return user

    def _authenticate(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        with self._lock:
            self._load()
        if scheme.lower() == "bearer":
            return "token" if self._token_ok(value.encode()) else None
        if scheme.lower() != "basic":
            return None
        try:
            user, colon, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not colon:
            return None
        if self._password_ok(user, password.encode()):
            return user
        if self._token_ok(password.encode()):
            return user or "token"
        return None

    def _token_ok(self, token: bytes) -> bool:
        # compare every token, in constant time each: the answer's timing says nothing of which
        return bool(token) and sum(hmac.compare_digest(token, t) for t in self._tokens) > 0

    def _password_ok(self, user: str, password: bytes) -> bool:
        hashed = self._users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(self._salt + password).digest())
        with self._lock:
            known = self._checked.get(key)
        if known is not None:
            return known
        import bcrypt  # only servers with an htpasswd file need it

        try:
            ok = bcrypt.checkpw(password, hashed)
        except ValueError:
            log.warning("htpasswd file %s: the hash of user %s is malformed", self.htpasswd, user)
            ok = False
        with self._lock:
            if len(self._checked) > 10000:
                self._checked.clear()
            self._checked[key] = ok
        return ok


__all__ = ["CHALLENGE", "Access"]
