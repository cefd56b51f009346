"""A minimal Docker registry token server (the ``auth: token:`` bearer flow), written for the tests.

PYTEST_DONT_REWRITE

Run as a process by :func:`peers.distribution.start_distribution` (``auth="token"``):
``python token_server.py PORT KEY_PEM CERT_PEM ISSUER USERS_JSON LOG``. Only the standard
library plus ``cryptography`` (a dependency of lfsreg itself).

What it does, and only that:

* ``GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]`` with HTTP Basic auth
  answers ``{"token", "access_token", "expires_in": 300, "issued_at"}``: a JWT (ES256, P-256)
  whose header carries the signing certificate as ``x5c``; docker-registry trusts it because the
  same self-signed certificate is its ``rootcertbundle``. Claims: ``iss`` = ISSUER, ``aud`` = S,
  ``sub`` = the user, ``iat``/``nbf``/``exp``, ``jti``, ``access``.
* What it checks: the Basic credentials against USERS_JSON (``{"user": "password"}``; a wrong
  password or unknown user is a 401); without credentials the caller is anonymous and gets
  ``pull`` only when USERS_JSON has ``"": ""`` (else a 401). A known user gets every action it
  asks for on every repository (no per-repository policy: the tests need the flow, not an ACL).
  ``service`` is echoed into ``aud`` unchecked (docker-registry rejects a wrong one).
* Every request is appended to LOG as one JSON line (``path``, ``user``, ``scopes``, ``status``;
  never the password), so a test can count token requests and see what was asked for.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

LIFETIME = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self, key_pem: bytes, cert_pem: bytes, issuer: str) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.cert_der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        self.issuer = issuer

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def token(self, user: str, service: str, access: list[dict]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": service,
            "iat": now,
            "nbf": now - 10,
            "exp": now + LIFETIME,
            "jti": b64url(os.urandom(12)),
            "access": access,
        }
        return self.sign(claims)


def parse_scope(scope: str) -> dict | None:
    """``repository:NAME:pull,push`` -> an access entry (NAME may hold ``:`` only before a port)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


def make_handler(issuer: TokenIssuer, users: dict[str, str], log_path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no ~40 ms delayed-ACK wait before each response body

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _user(self) -> str | None:
            """The authenticated user, "" for anonymous, None for bad credentials."""
            auth = self.headers.get("Authorization", "")
            if not auth:
                return "" if "" in users else None
            if not auth.startswith("Basic "):
                return None
            try:
                user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            expected = users.get(user)
            if not user or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
                return None
            return user

        def _answer(self, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = query.get("scope", [])
            user = self._user()
            entry = {"path": url.path, "user": user, "scopes": scopes, "service": query.get("service", [""])[0]}
            if url.path == "/health":
                status = 200
                self._answer(200, {})
            elif url.path != "/token":
                status = 404
                self._answer(404, {"error": "not found"})
            elif user is None:
                status = 401
                self._answer(401, {"error": "bad credentials"}, {"WWW-Authenticate": 'Basic realm="lfsreg-test-token"'})
            else:
                access = []
                for scope in scopes:
                    parsed = parse_scope(scope)
                    if parsed is None:
                        continue
                    if user == "":  # anonymous: pull only
                        parsed["actions"] = [a for a in parsed["actions"] if a == "pull"]
                    access.append(parsed)
                token = issuer.token(user or "anonymous", entry["service"], access)
                issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                status = 200
                self._answer(200, {"token": token, "access_token": token, "expires_in": LIFETIME, "issued_at": issued})
            entry["status"] = status
            if url.path == "/health":  # the start-up probe: not a client's request
                return
            with open(log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")

    return Handler


def main(argv: list[str]) -> int:
    port, key_pem, cert_pem, iss, users_json, log_path = argv
    with open(key_pem, "rb") as k, open(cert_pem, "rb") as c, open(users_json) as u:
        issuer = TokenIssuer(k.read(), c.read(), iss)
        users = json.load(u)
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), make_handler(issuer, users, log_path))
    print(f"token server on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
