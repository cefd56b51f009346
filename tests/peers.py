"""Real servers for the test suite, started on 127.0.0.1 (a pytest plugin: fixtures + helpers).

(PYTEST_DONT_REWRITE: no asserts here; lets test modules import it before pytest does.)

Use it from a test module or conftest with ``pytest_plugins = ["peers"]``. Fixtures:

* ``git_http_server`` (session): GitHub-style git + LFS on one base URL, behind HTTP Basic auth.
  nginx + fcgiwrap run stock ``git http-backend`` over a root of bare repos
  (``http://127.0.0.1:PORT/ORG/REPO.git``) and proxy ``/ORG/REPO.git/info/lfs/...`` to
  ``giftless_server``. The batch/locks API needs the same credentials as git; the object
  hrefs giftless hands out (``.../info/lfs/objects/storage/...``) are exempt, because giftless
  signs them itself (a ``Bearer`` JWT in the action's ``header``, or ``?jwt=`` on downloads)
  and that header *replaces* the client's basic credentials on the transfer.
* ``git_http_repo`` (function): a fresh, empty bare repo on ``git_http_server``.
* ``giftless_server`` (session): giftless 0.6.2 (uWSGI), anonymous read/write, no auth at all;
  the LFS endpoint of ``ORG/REPO`` is ``http://127.0.0.1:PORT/ORG/REPO.git/info/lfs``.
* ``dulwich_lfs_server`` (session): ``dulwich.lfs_server``, no auth, endpoint = its root URL.
* ``sshd_server`` (session): Debian's OpenSSH ``sshd`` on 127.0.0.1 with a throwaway host key, over
  ``git_http_server``'s repos. ``add_key(repo, access="rw"|"ro", lfs="authenticate"|"transfer"|"none")``
  makes a deploy key for one repository: its forced command allows ``git-upload-pack``,
  ``git-receive-pack`` (not for read-only keys) and ``git-lfs-authenticate`` (which hands out
  ``git_http_server``'s LFS URL with its Basic credentials, as GitHub does) or
  ``git-lfs-transfer`` (``tests/lfs_transfer_server.py``); other repositories are "not found".

The ``start_*`` context managers start private instances (e.g. for a test that needs its own
user/password, or that stops a server on purpose).

Each server is one or more process groups of our own (``start_new_session``), logs under a
pytest temp dir, health-checked before it is handed out, and stopped with SIGTERM to its
process group (SIGKILL after 10 s). A missing tool (nginx, fcgiwrap, htpasswd, git
http-backend, the giftless venv from ``tools/install-test-deps.sh``) skips the test, or fails
it when ``CI`` is set (``gitenv.require_tool`` semantics).

Quirks of the peers worth knowing when testing a client against them:

* giftless answers **HTTP 404** to a download batch in which *all* objects are missing (partial
  misses: 200 with per-object errors) and 422 to an empty ``objects`` list; it offers a
  ``verify`` action; it has no locks API (``POST .../locks/verify`` -> 404, which git-lfs
  ignores). Storage is per repo: ``giftless.storage / ORG / REPO / <oid>``.
* ``ORG`` must be non-empty for giftless: ``/REPO.git/info/lfs`` is a 404.
* dulwich.lfs_server: one flat store (``store/objects/aa/bb/<oid>``) for all repos, missing
  objects are 200 + per-object 404, every object is held in memory (keep them small).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from gitenv import require_tool, run_git

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

HOST = "127.0.0.1"
#: Seconds a server may take to answer its health check.
START_TIMEOUT = 15.0
#: Seconds between SIGTERM and SIGKILL when stopping a process group.
STOP_TIMEOUT = 10.0
#: Default HTTP Basic credentials of ``git_http_server``.
DEFAULT_USER = "tester"
DEFAULT_PASSWORD = "s3cret-pw"
#: HMAC key giftless signs its object hrefs with (test-only).
GIFTLESS_SECRET = "lfsreg-test-secret-0123456789abcdef0123"
EMPTY_OID = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"

_REPO_NAME_OK = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$")


# -- tool lookup ----------------------------------------------------------------------------------
def _missing(msg: str) -> None:
    """Skip the test, or fail it when ``CI`` is set (as ``gitenv.require_tool``)."""
    msg += " (install it with tools/install-test-deps.sh)"
    if "CI" in os.environ:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _tool(name: str) -> str:
    """Path of an executable on PATH or in /usr/sbin (not on a non-root PATH); else skip/fail."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    return found if found else require_tool(name)


def peers_dir() -> Path:
    """Where tools/install-test-deps.sh put the peer venvs (``$LFSREG_PEERS`` or its defaults)."""
    if os.environ.get("LFSREG_PEERS"):
        return Path(os.environ["LFSREG_PEERS"])
    candidates = [Path("/opt/lfsreg-peers"), Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lfsreg-peers"]
    for c in candidates:
        if (c / "venv-giftless" / "bin" / "uwsgi").exists():
            return c
    return candidates[0] if os.geteuid() == 0 else candidates[1]


def giftless_venv() -> Path:
    venv = peers_dir() / "venv-giftless"
    if not (venv / "bin" / "uwsgi").exists():
        _missing(f"giftless venv {venv} (with uwsgi) not found")
    return venv


def _git_http_backend() -> str:
    git = require_tool("git")
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not os.access(backend, os.X_OK):
        _missing(f"git http-backend not found at {backend}")
    return str(backend)


# -- processes ------------------------------------------------------------------------------------
_RUNNING: list[_Proc] = []


class _Proc:
    """A server process started as the leader of its own session / process group."""

    def __init__(self, argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pgid = self.popen.pid
        _RUNNING.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Whether a live (non-zombie) process of our group is still there (leader or children).

        Zombies are ignored: children orphaned by their exiting master (fcgiwrap's
        preforked workers) are reaped by PID 1 whenever it gets round to it, which can take
        a second; they hold nothing any more.
        """
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - cannot happen for our own children
            return True
        try:
            entries = os.listdir("/proc")
        except OSError:  # pragma: no cover - no procfs: trust killpg
            return True
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid pgrp ...": comm may contain spaces/parens, split after it
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == self.pgid and fields[0] not in ("Z", "X"):
                return True
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, wait, SIGKILL what is left."""
        if self in _RUNNING:
            _RUNNING.remove(self)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.popen.wait(timeout)
        # workers that outlived their master (the group id stays reserved while they exist)
        deadline = time.monotonic() + timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.group_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)


@atexit.register
def _stop_leftovers() -> None:
    """Safety net: never leave a server behind if a teardown did not run."""
    for proc in list(_RUNNING):
        proc.stop(2.0)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection (stdlib): ``(status, body)``."""
    u = urllib.parse.urlsplit(url)
    hdrs = dict(headers or {})
    if auth is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def lfs_batch_body(operation: str, objects: list[tuple[str, int]]) -> bytes:
    return json.dumps({"operation": operation, "transfers": ["basic"], "objects": [{"oid": o, "size": s} for o, s in objects]}).encode()


LFS_HEADERS = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}


def _wait_healthy(procs: list[_Proc], check: Callable[[], bool], what: str, logs: list[Path], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise RuntimeError(f"{what} exited during start-up ({dead[0].argv[0]})\n" + "\n".join(_tails(logs)))
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not healthy after {timeout} s\n" + "\n".join(_tails(logs)))
        time.sleep(0.03)


def _tails(logs: list[Path]) -> list[str]:
    return [f"---- {p} ----\n{log_tail(p)}" for p in logs]


def _started(start: Callable[[int], tuple[list[_Proc], Path]], check: Callable[[int], bool], what: str) -> tuple[int, list[_Proc]]:
    """Start on a free port and wait until healthy; retry on another port if the bind races."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        procs, log = start(port)
        try:
            _wait_healthy(procs, lambda port=port: check(port), what, [log])
        except RuntimeError as exc:
            for p in reversed(procs):
                p.stop(2.0)
            if "in use" not in log_tail(log, 200):
                raise
            last = exc
            continue
        return port, procs
    raise RuntimeError(f"{what}: no free port after 3 tries") from last


# -- giftless ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GiftlessServer:
    """giftless (anonymous read/write) on ``url``; objects of ``ORG/REPO`` in ``storage/ORG/REPO/<oid>``."""

    url: str
    port: int
    storage: Path
    config: Path
    log: Path

    def lfs_url(self, repo: str) -> str:
        """LFS endpoint of ``ORG/REPO`` (``.git`` optional): ``URL/ORG/REPO.git/info/lfs``."""
        return f"{self.url}/{_repo_path(repo)}.git/info/lfs"

    def object_path(self, repo: str, oid: str) -> Path:
        return self.storage / _repo_path(repo) / oid


def _repo_path(repo: str) -> str:
    repo = repo.strip("/")
    return repo[: -len(".git")] if repo.endswith(".git") else repo


_GIFTLESS_YAML = """\
# generated by tests/peers.py
LEGACY_ENDPOINTS: false          # every href under /ORG/REPO.git/info/lfs/... (one prefix to proxy)
AUTH_PROVIDERS:
  - giftless.auth.allow_anon:read_write    # no auth: the proxy in front (nginx) is the boundary
PRE_AUTHORIZED_ACTION_PROVIDER:  # signs the upload/download/verify hrefs it hands out
  factory: giftless.auth.jwt:factory
  options:
    algorithm: HS256
    private_key: "{secret}"
    default_lifetime: 3600
    key_id: giftless-internal-jwt-key    # tokens without this "kid" header are ignored
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: {storage}
      action_lifetime: 3600
"""


@contextlib.contextmanager
def start_giftless(workdir: Path) -> Iterator[GiftlessServer]:
    """giftless under uWSGI on a free port; files (config, storage, log) under ``workdir``."""
    venv = giftless_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "lfs-storage"
    storage.mkdir(exist_ok=True)
    config = workdir / "giftless.yaml"
    config.write_text(_GIFTLESS_YAML.format(secret=GIFTLESS_SECRET, storage=storage))
    log = workdir / "giftless.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GIT_", "VIRTUAL_ENV"))}
    env["GIFTLESS_CONFIG_FILE"] = str(config)

    def start(port: int) -> tuple[list[_Proc], Path]:
        argv = [
            str(venv / "bin" / "uwsgi"),
            "--master",
            "--die-on-term",  # uWSGI 2.0 treats SIGTERM as "reload" without it
            # plain --http-socket answers HTTP/1.1 without "Connection: close" and then closes
            # anyway: keep-alive clients (git-lfs, requests) get random "connection reset" on
            # their next request.  --http11-socket is worse: giftless sends downloads with
            # neither Content-Length nor chunking, each stalls until the socket timeout.
            "--http-socket",
            f"{HOST}:{port}",
            "--add-header",
            "Connection: close",
            "--processes",
            "2",
            "--threads",
            "8",
            "--module",
            "giftless.wsgi_entrypoint",
            "--callable",
            "app",
            "--manage-script-name",
            "--buffer-size",
            "32768",
            "--need-app",
        ]
        return [_Proc(argv, log, env=env, cwd=workdir)], log

    def healthy(port: int) -> bool:  # upload batch for the empty object -> 200
        status, _ = http_request(
            "POST",
            f"http://{HOST}:{port}/health/check.git/info/lfs/objects/batch",
            body=lfs_batch_body("upload", [(EMPTY_OID, 0)]),
            headers=LFS_HEADERS,
            timeout=2,
        )
        return status == 200

    port, procs = _started(start, healthy, "giftless")
    try:
        server = GiftlessServer(url=f"http://{HOST}:{port}", port=port, storage=storage, config=config, log=log)
        _warm_up_giftless(server)
        yield server
    finally:
        for p in procs:
            p.stop()


def _warm_up_giftless(server: GiftlessServer, rounds: int = 6) -> None:
    """Get every giftless worker past its first concurrent requests before tests use it.

    giftless 0.6.2 sets up its authenticators lazily and not thread-safely: a uWSGI worker's
    first concurrent object requests may be treated as anonymous and refused (403). Rounds
    of 16 concurrent upload + verify, until two rounds in a row are all 200.
    """
    import hashlib
    import threading

    repo = "_peers/warmup"
    (server.storage / repo).mkdir(parents=True, exist_ok=True)
    clean = 0
    for rnd in range(rounds):
        objs = [(hashlib.sha256(d).hexdigest(), d) for d in (os.urandom(256) + f"{rnd}/{i}".encode() for i in range(16))]
        status, body = http_request(
            "POST",
            server.lfs_url(repo) + "/objects/batch",
            body=lfs_batch_body("upload", [(o, len(d)) for o, d in objs]),
            headers=LFS_HEADERS,
            timeout=30,
        )
        if status != 200:
            continue
        actions = {o["oid"]: o.get("actions", {}) for o in json.loads(body)["objects"]}
        statuses: list[int] = []

        def put(oid: str, data: bytes, actions: dict = actions, statuses: list[int] = statuses) -> None:
            a = actions.get(oid, {})
            try:
                if "upload" in a:
                    statuses.append(http_request("PUT", a["upload"]["href"], body=data, headers=a["upload"].get("header", {}))[0])
                if "verify" in a:
                    verify = json.dumps({"oid": oid, "size": len(data)}).encode()
                    headers = {**LFS_HEADERS, **a["verify"].get("header", {})}
                    statuses.append(http_request("POST", a["verify"]["href"], body=verify, headers=headers)[0])
            except OSError:
                statuses.append(0)

        threads = [threading.Thread(target=put, args=o) for o in objs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clean = clean + 1 if set(statuses) == {200} else 0
        if clean >= 2:
            return


# -- git smart HTTP (nginx + fcgiwrap + git http-backend) [+ giftless] ------------------------------
@dataclass(frozen=True)
class PeerRepo:
    """A bare repository served by :class:`GitHttpServer`."""

    name: str  # "ORG/REPO" (no ".git")
    path: Path  # the bare repository on disk
    url: str  # http://127.0.0.1:PORT/ORG/REPO.git -- no credentials
    auth_url: str  # the same with "user:password@"
    lfs_url: str  # url + "/info/lfs" (what git-lfs derives by itself)
    lfs_storage: Path | None  # giftless's directory for this repo's objects (None without LFS)

    def lfs_object(self, oid: str) -> Path:
        """Where giftless stores object ``oid`` of this repo."""
        if self.lfs_storage is None:
            raise ValueError("server has no LFS upstream")
        return self.lfs_storage / oid


@dataclass(frozen=True)
class GitHttpServer:
    """Stock ``git http-backend`` behind nginx with HTTP Basic auth, plus giftless on the same URL."""

    url: str  # http://127.0.0.1:PORT (no credentials)
    port: int
    user: str
    password: str
    root: Path  # directory of bare repos: ROOT/ORG/REPO.git is served at URL/ORG/REPO.git
    lfs: GiftlessServer | None  # upstream of URL/ORG/REPO.git/info/lfs/ (None: plain git server)
    workdir: Path
    access_log: Path  # nginx access log (every git and LFS request, with status)
    error_log: Path  # nginx error log (+ git http-backend's stderr, via fcgiwrap -f)
    fcgiwrap_log: Path
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False, compare=False)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def auth_base(self) -> str:
        """``http://user:password@127.0.0.1:PORT`` (userinfo percent-encoded)."""
        q = urllib.parse.quote
        return f"http://{q(self.user, safe='')}:{q(self.password, safe='')}@{HOST}:{self.port}"

    def repo(self, name: str) -> PeerRepo:
        """The :class:`PeerRepo` for ``ORG/REPO`` (need not exist yet)."""
        name = _repo_path(name)
        if not _REPO_NAME_OK.match(name) or ".." in name.split("/"):
            raise ValueError(f"repo name must look like ORG/REPO: {name!r}")
        return PeerRepo(
            name=name,
            path=self.root / f"{name}.git",
            url=f"{self.url}/{name}.git",
            auth_url=f"{self.auth_base()}/{name}.git",
            lfs_url=f"{self.url}/{name}.git/info/lfs",
            lfs_storage=(self.lfs.storage / name) if self.lfs else None,
        )

    def create_repo(self, name: str | None = None) -> PeerRepo:
        """``git init --bare`` a new, empty repo (HEAD -> main, ``http.receivepack`` on)."""
        if name is None:
            name = f"lfsreg/repo-{next(self._counter)}"
        repo = self.repo(name)
        if repo.path.exists():
            raise FileExistsError(repo.path)
        env = _bare_git_env(self.workdir)
        run_git(["init", "-q", "--bare", "--initial-branch=main", repo.path], cwd=self.workdir, env=env)
        run_git(["config", "http.receivepack", "true"], cwd=repo.path, env=env)
        if repo.lfs_storage is not None:
            # giftless creates a repo's directory with check-then-mkdir: concurrent first
            # uploads race on it (500 FileExistsError). A host's LFS store exists up front.
            repo.lfs_storage.mkdir(parents=True, exist_ok=True)
        return repo

    def credential_line(self) -> str:
        """A line for ``git credential-store``'s file: ``http://user:password@127.0.0.1:PORT``."""
        return self.auth_base()


def _bare_git_env(workdir: Path) -> dict[str, str]:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }


def use_credential_store(env: dict[str, str], server: GitHttpServer, cwd: Path) -> Path:
    """Give an isolated git env (``gitenv.isolated_git_env``) the server's credentials.

    Writes a ``git credential-store`` file next to the env's global config and sets
    ``credential.helper = store --file FILE`` there; git-lfs uses it for the LFS API too.
    Returns the file.
    """
    store = Path(env["HOME"]) / "git-credentials"
    store.write_text(server.credential_line() + "\n")
    store.chmod(0o600)
    run_git(["config", "--global", "credential.helper", f"store --file {store}"], cwd=cwd, env=env)
    return store


_PROXY_CONF = """\
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;          # giftless builds its hrefs from Host
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header Connection "";
      proxy_request_buffering off;               # stream big uploads
      proxy_buffering off;                       # stream big downloads
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
"""

_NGINX_CONF = """\
# generated by tests/peers.py
daemon off;
worker_processes 2;
{user}
pid {run}/nginx.pid;
error_log {run}/error.log info;
events {{ worker_connections 512; }}
http {{
  access_log {run}/access.log;
  client_body_temp_path {run}/tmp/body;   # compiled-in defaults are under /var/lib/nginx
  proxy_temp_path       {run}/tmp/proxy;
  fastcgi_temp_path     {run}/tmp/fastcgi;
  uwsgi_temp_path       {run}/tmp/uwsgi;
  scgi_temp_path        {run}/tmp/scgi;
  client_max_body_size 0;                 # packs and LFS objects can be big
  server {{
    listen {host}:{port};
    auth_basic "lfsreg test git";
    auth_basic_user_file {run}/htpasswd;
{lfs}
    # everything else: git smart HTTP via stock git http-backend
    location / {{
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME {backend};
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;          # http-backend allows push only with a user
      fastcgi_param GIT_PROTOCOL $http_git_protocol;   # protocol v2
      fastcgi_param GIT_CONFIG_NOSYSTEM 1;             # the server ignores /etc/gitconfig ...
      fastcgi_param HOME {run}/home;                   # ... and the invoking user's ~/.gitconfig
      fastcgi_pass unix:{sock};
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      fastcgi_read_timeout 600s;
      fastcgi_send_timeout 600s;
    }}
  }}
}}
"""

_NGINX_LFS = """\
    # LFS object transfers: giftless checks its own signed JWT (the action's Bearer header
    # replaces the client's basic credentials), so no basic auth here
    location ~ ^/.+\\.git/info/lfs/objects/storage/ {{
      auth_basic off;
{proxy}    }}
    # LFS batch (+ locks) API: same credentials as git
    location ~ ^/.+\\.git/info/lfs/ {{
{proxy}    }}
"""


@contextlib.contextmanager
def start_git_http(
    workdir: Path,
    *,
    lfs: GiftlessServer | None = None,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
) -> Iterator[GitHttpServer]:
    """nginx + fcgiwrap + ``git http-backend`` on a free port, repos under ``workdir/repos``.

    With ``lfs`` (a giftless server in anonymous mode), ``/ORG/REPO.git/info/lfs/`` is
    proxied to it: one base URL for git and LFS, basic auth on both except the signed
    object hrefs.
    """
    nginx = _tool("nginx")
    fcgiwrap = _tool("fcgiwrap")
    htpasswd = _tool("htpasswd")
    backend = _git_http_backend()
    if not Path("/etc/nginx/fastcgi_params").exists():
        _missing("/etc/nginx/fastcgi_params (Debian nginx-common)")

    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "repos"
    root.mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    (workdir / "home").mkdir(exist_ok=True)
    # unix socket paths are limited to 108 bytes: fall back to a short private dir
    sock_dir = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="lfsreg-fcgi-"))
    sock = sock_dir / "fcgiwrap.sock"
    fcgi_log = workdir / "fcgiwrap.log"
    nginx_log = workdir / "nginx.log"  # nginx's own stderr (start-up errors)
    subprocess.run([htpasswd, "-b", "-c", "-m", str(workdir / "htpasswd"), user, password], check=True, capture_output=True)

    lfs_conf = _NGINX_LFS.format(proxy=_PROXY_CONF.format(upstream=lfs.url)) if lfs else ""
    # as root, nginx workers would run as "nobody" and could not use the socket/temp dirs
    user_line = "user root root;" if os.geteuid() == 0 else ""

    # fcgiwrap runs git-http-backend (as the user who runs the tests) for each request;
    # -f: its stderr goes to nginx's error log
    if sock.exists():
        sock.unlink()
    fcgi = _Proc([fcgiwrap, "-f", "-c", "4", "-s", f"unix:{sock}", "-p", backend], fcgi_log, cwd=workdir)
    try:
        _wait_healthy([fcgi], sock.exists, "fcgiwrap", [fcgi_log])

        # a throwaway repo for the health check
        env = _bare_git_env(workdir)
        probe = root / "_health" / "probe.git"
        if not probe.exists():
            run_git(["init", "-q", "--bare", probe], cwd=workdir, env=env)

        conf = workdir / "nginx.conf"

        def start(port: int) -> tuple[list[_Proc], Path]:
            conf.write_text(
                _NGINX_CONF.format(user=user_line, run=workdir, host=HOST, port=port, lfs=lfs_conf, backend=backend, root=root, sock=sock)
            )
            return [_Proc([nginx, "-p", str(workdir), "-e", str(nginx_log), "-c", str(conf)], nginx_log, cwd=workdir)], nginx_log

        def healthy(port: int) -> bool:
            base = f"http://{HOST}:{port}"
            status, _ = http_request("GET", f"{base}/_health/probe.git/info/refs?service=git-upload-pack", auth=(user, password), timeout=2)
            if status != 200:
                return False
            if lfs is None:
                return True
            status, _ = http_request(
                "POST",
                f"{base}/_health/probe.git/info/lfs/objects/batch",
                body=lfs_batch_body("upload", [(EMPTY_OID, 0)]),
                headers=LFS_HEADERS,
                auth=(user, password),
                timeout=2,
            )
            return status == 200

        port, procs = _started(start, healthy, "nginx (git http-backend)")
        try:
            yield GitHttpServer(
                url=f"http://{HOST}:{port}",
                port=port,
                user=user,
                password=password,
                root=root,
                lfs=lfs,
                workdir=workdir,
                access_log=workdir / "access.log",
                error_log=workdir / "error.log",
                fcgiwrap_log=fcgi_log,
            )
        finally:
            for p in procs:
                p.stop()
    finally:
        fcgi.stop()
        with contextlib.suppress(OSError):
            sock.unlink()
        if sock_dir != workdir:
            shutil.rmtree(sock_dir, ignore_errors=True)


# -- dulwich.lfs_server ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DulwichLfsServer:
    """``dulwich.lfs_server`` (no auth); its LFS endpoint is ``url`` itself."""

    url: str
    port: int
    store: Path  # objects in store/objects/aa/bb/<oid>, one store for every repo
    log: Path

    @property
    def lfs_url(self) -> str:
        return self.url

    def object_path(self, oid: str) -> Path:
        return self.store / "objects" / oid[:2] / oid[2:4] / oid


_DULWICH_LFS_MAIN = """\
import sys
from dulwich.lfs_server import run_lfs_server
server, url = run_lfs_server(host=sys.argv[1], port=int(sys.argv[2]), lfs_dir=sys.argv[3], log_requests=True)
print("serving", url, flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def start_dulwich_lfs(workdir: Path, python: str = sys.executable) -> Iterator[DulwichLfsServer]:
    """``dulwich.lfs_server`` (dulwich from the test interpreter) on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "lfs-store"
    store.mkdir(exist_ok=True)
    log = workdir / "dulwich-lfs.log"

    def start(port: int) -> tuple[list[_Proc], Path]:
        return [_Proc([python, "-u", "-c", _DULWICH_LFS_MAIN, HOST, str(port), str(store)], log, cwd=workdir)], log

    def healthy(port: int) -> bool:  # a missing object: 200 with a per-object 404
        status, _ = http_request(
            "POST",
            f"http://{HOST}:{port}/objects/batch",
            body=lfs_batch_body("download", [(EMPTY_OID, 0)]),
            headers=LFS_HEADERS,
            timeout=2,
        )
        return status == 200

    port, procs = _started(start, healthy, "dulwich.lfs_server")
    try:
        yield DulwichLfsServer(url=f"http://{HOST}:{port}", port=port, store=store, log=log)
    finally:
        for p in procs:
            p.stop()


# -- sshd (Debian openssh-server) in front of the same repos and LFS -----------------------------------
_SSHD_CONFIG = """\
# generated by tests/peers.py
Port {port}
ListenAddress {host}
HostKey {host_key}
PidFile {run}/sshd.pid
AuthorizedKeysFile {run}/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin forced-commands-only
AllowUsers {login}
UsePAM no
# the keys live below world-writable /tmp
StrictModes no
PrintMotd no
PermitUserEnvironment no
AcceptEnv GIT_PROTOCOL
# bash sources ~/.bashrc for commands run by sshd unless it is not a top-level shell: a git
# host runs no login scripts (here /root/.bashrc's pyenv init would add ~0.2 s to every command)
SetEnv SHLVL=1
AllowTcpForwarding no
X11Forwarding no
MaxStartups 100:30:200
LogLevel VERBOSE
"""

# The forced command of every key: like a git host's deploy key, it serves ONE repository.
# Per-key settings come from the file given as $1 (see SshServer.add_key).
_GIT_SHELL = r"""#!/bin/bash
set -u
source "$1"
cmd=${SSH_ORIGINAL_COMMAND:-}
echo "$(date +%s.%N) key=$KEY_NAME cmd=$cmd" >> "$SHELL_LOG"
export HOME=$SHELL_HOME GIT_CONFIG_NOSYSTEM=1
re_path="'?/?([A-Za-z0-9._/-]+)'?"
norm() { local r=${1%/}; [[ $r == *.git ]] || r=$r.git; echo "$r"; }
if [[ $cmd =~ ^(git-upload-pack|git-receive-pack)\ $re_path$ ]]; then
  verb=${BASH_REMATCH[1]}; repo=$(norm "${BASH_REMATCH[2]}")
  [[ $repo == "$REPO" ]] || { echo "ERROR: Repository not found." >&2; exit 1; }
  if [[ $verb == git-receive-pack && $ACCESS != rw ]]; then
    echo "ERROR: The key you are authenticating with has been marked as read only." >&2; exit 1
  fi
  exec "$verb" "$REPO_ROOT/$repo"
elif [[ $cmd =~ ^(git-lfs-authenticate|git-lfs-transfer)\ $re_path\ (upload|download)$ ]]; then
  verb=${BASH_REMATCH[1]}; repo=$(norm "${BASH_REMATCH[2]}"); op=${BASH_REMATCH[3]}
  if [[ $verb != "git-lfs-$LFS" ]]; then echo "bash: $verb: command not found" >&2; exit 127; fi
  [[ $repo == "$REPO" ]] || { echo "ERROR: Repository not found." >&2; exit 1; }
  if [[ $op == upload && $ACCESS != rw ]]; then
    echo "ERROR: The key you are authenticating with has been marked as read only." >&2; exit 1
  fi
  if [[ $verb == git-lfs-authenticate ]]; then
    printf '{"href": "%s/%s/info/lfs", "header": {"Authorization": "%s"}, "expires_in": %s}\n' \
      "$LFS_BASE" "$repo" "$LFS_AUTH_HEADER" "$LFS_EXPIRES_IN"
    exit 0
  fi
  exec "$PYTHON" "$TRANSFER_SERVER" "$TRANSFER_STORE/${repo%.git}" "$op"
else
  echo "Invalid command: '$cmd'" >&2; exit 1
fi
"""


@dataclass(frozen=True)
class SshKey:
    """A client key the server knows, locked to one repository (a deploy key)."""

    name: str
    path: Path  # the private key (OpenSSH format, mode 0600)
    public: str  # the public key line
    repo: str  # "ORG/REPO.git" it may access
    access: str  # "rw" or "ro"
    lfs: str  # what the server offers for LFS: "authenticate", "transfer" or "none"


@dataclass
class SshServer:
    """OpenSSH ``sshd`` on 127.0.0.1 serving the repos of ``git`` (and its LFS, via git-lfs-authenticate)."""

    host: str
    port: int
    login: str  # the user every key logs in as (the user running the tests)
    git: GitHttpServer
    workdir: Path
    host_key: Path  # private host key (ed25519)
    host_public: str  # its public line "ssh-ed25519 AAAA..."
    known_hosts: Path  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
    log: Path  # sshd's own log (-e, LogLevel VERBOSE)
    shell_log: Path  # every command the forced command saw
    transfer_store: Path  # git-lfs-transfer objects: STORE/ORG/REPO/<oid>
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"

    def url(self, repo: PeerRepo | str, *, scp_like: bool = False) -> str:
        """``ssh://LOGIN@127.0.0.1:PORT/ORG/REPO.git`` (scp-like needs port 22, so only as a string form)."""
        name = repo.name if isinstance(repo, PeerRepo) else _repo_path(repo)
        if scp_like:
            return f"{self.login}@{self.host}:{name}.git"
        return f"ssh://{self.login}@{self.host}:{self.port}/{name}.git"

    def add_key(
        self,
        repo: PeerRepo | str,
        *,
        access: str = "rw",
        lfs: str = "authenticate",
        key_type: str = "ed25519",
        passphrase: str = "",
        lfs_expires_in: int = 3600,
        name: str | None = None,
    ) -> SshKey:
        """Make a key (``ssh-keygen``) and authorise it for ``repo`` only, like a deploy key."""
        name = name or f"key-{next(self._counter)}"
        keydir = self.workdir / "keys"
        keydir.mkdir(exist_ok=True)
        path = keydir / name
        bits = ["-b", "3072"] if key_type == "rsa" else ["-b", "256"] if key_type == "ecdsa" else []
        subprocess.run(
            [_tool("ssh-keygen"), "-q", "-t", key_type, *bits, "-N", passphrase, "-C", name, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        public = (keydir / f"{name}.pub").read_text().strip()
        return self.authorize(public, repo, access=access, lfs=lfs, lfs_expires_in=lfs_expires_in, name=name, path=path)

    def authorize(
        self,
        public: str,
        repo: PeerRepo | str,
        *,
        access: str = "rw",
        lfs: str = "authenticate",
        lfs_expires_in: int = 3600,
        name: str | None = None,
        path: Path | None = None,
    ) -> SshKey:
        """Authorise an existing public key line for ``repo`` only (see :meth:`add_key`)."""
        repo_name = (repo.name if isinstance(repo, PeerRepo) else _repo_path(repo)) + ".git"
        name = name or f"key-{next(self._counter)}"
        keydir = self.workdir / "keys"
        keydir.mkdir(exist_ok=True)
        conf = keydir / f"{name}.conf"
        auth = "Basic " + base64.b64encode(f"{self.git.user}:{self.git.password}".encode()).decode()
        conf.write_text(
            f"KEY_NAME={name}\nREPO='{repo_name}'\nACCESS={access}\nLFS={lfs}\nREPO_ROOT='{self.git.root}'\n"
            f"LFS_BASE='{self.git.url}'\nLFS_AUTH_HEADER='{auth}'\nLFS_EXPIRES_IN={lfs_expires_in}\n"
            f"SHELL_LOG='{self.shell_log}'\nSHELL_HOME='{self.workdir / 'home'}'\nPYTHON='{sys.executable}'\n"
            f"TRANSFER_SERVER='{Path(__file__).parent / 'lfs_transfer_server.py'}'\nTRANSFER_STORE='{self.transfer_store}'\n"
        )
        with open(self.workdir / "authorized_keys", "a") as f:  # sshd reads it at every login
            f.write(f'command="{self.workdir / "git-shell.sh"} {conf}",restrict {public}\n')
        return SshKey(name, path or keydir / name, public, repo_name, access, lfs)

    def ssh_command(self, key: SshKey, known_hosts: Path | None = None) -> str:
        """A ``GIT_SSH_COMMAND`` for stock git + git-lfs with ``key`` (the ssh binary is fine in tests)."""
        return (
            f"ssh -i {key.path} -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts or self.known_hosts} "
            "-o StrictHostKeyChecking=yes -o BatchMode=yes"
        )

    def logins(self) -> int:
        """How many connections authenticated so far (sshd's ``Accepted publickey`` lines)."""
        try:
            return self.log.read_text(errors="replace").count("Accepted publickey")
        except OSError:
            return 0

    def commands(self) -> list[str]:
        """Every command the forced command saw, in order."""
        try:
            return [line.split(" cmd=", 1)[1] for line in self.shell_log.read_text().splitlines() if " cmd=" in line]
        except OSError:
            return []


@contextlib.contextmanager
def start_sshd(workdir: Path, git: GitHttpServer) -> Iterator[SshServer]:
    """``sshd -D -e`` on a free port of 127.0.0.1 with a throwaway ed25519 host key.

    Keys are added per test with :meth:`SshServer.add_key`; each may reach one repository of
    ``git`` (``git-upload-pack``, ``git-receive-pack`` unless read-only, and for LFS either
    ``git-lfs-authenticate`` pointing at ``git``'s LFS with its Basic credentials, or
    ``git-lfs-transfer`` served by ``tests/lfs_transfer_server.py``).
    """
    sshd = _tool("sshd")
    keygen = _tool("ssh-keygen")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "home").mkdir(exist_ok=True)
    if not Path("/run/sshd").is_dir():  # privilege separation directory compiled into Debian's sshd
        try:
            Path("/run/sshd").mkdir(mode=0o755)
        except OSError:
            _missing("/run/sshd (sshd's privilege separation directory) is missing and cannot be created")
    host_key = workdir / "ssh_host_ed25519_key"
    if not host_key.exists():
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "throwaway-host-key", "-f", str(host_key)], check=True)
    host_public = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    shell = workdir / "git-shell.sh"
    shell.write_text(_GIT_SHELL)
    shell.chmod(0o755)
    (workdir / "authorized_keys").touch(mode=0o600)
    transfer_store = workdir / "lfs-transfer-store"
    transfer_store.mkdir(exist_ok=True)
    log = workdir / "sshd.log"
    login = pwd.getpwuid(os.geteuid()).pw_name
    config = workdir / "sshd_config"

    def start(port: int) -> tuple[list[_Proc], Path]:
        config.write_text(_SSHD_CONFIG.format(port=port, host=HOST, host_key=host_key, run=workdir, login=login))
        return [_Proc([sshd, "-D", "-e", "-f", str(config)], log, cwd=workdir)], log

    def healthy(port: int) -> bool:
        with socket.create_connection((HOST, port), timeout=2) as s:
            return s.recv(64).startswith(b"SSH-2.0-")

    port, procs = _started(start, healthy, "sshd")
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_public}\n")
    try:
        yield SshServer(HOST, port, login, git, workdir, host_key, host_public, known_hosts, log, workdir / "git-shell.log", transfer_store)
    finally:
        for p in procs:
            p.stop()


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def giftless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiftlessServer]:
    """giftless (anonymous read/write) for the whole session."""
    with start_giftless(tmp_path_factory.mktemp("giftless")) as server:
        yield server


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory, giftless_server: GiftlessServer) -> Iterator[GitHttpServer]:
    """git http-backend + giftless on one base URL, HTTP Basic auth (``user``/``password``)."""
    with start_git_http(tmp_path_factory.mktemp("git-http"), lfs=giftless_server) as server:
        yield server


@pytest.fixture
def git_http_repo(git_http_server: GitHttpServer, request: pytest.FixtureRequest) -> PeerRepo:
    """A fresh, empty bare repo on ``git_http_server`` for this test."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:40].strip("-.") or "test"
    n = 1
    while git_http_server.repo(f"t/{base}-{n}").path.exists():
        n += 1
    return git_http_server.create_repo(f"t/{base}-{n}")


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory, git_http_server: GitHttpServer) -> Iterator[SshServer]:
    """OpenSSH sshd over ``git_http_server``'s repos and LFS; add deploy keys with ``add_key``."""
    with start_sshd(tmp_path_factory.mktemp("sshd"), git_http_server) as server:
        yield server


@pytest.fixture(scope="session")
def dulwich_lfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DulwichLfsServer]:
    """dulwich.lfs_server for the whole session (no auth; endpoint = its root URL)."""
    with start_dulwich_lfs(tmp_path_factory.mktemp("dulwich-lfs")) as server:
        yield server


# -- by hand --------------------------------------------------------------------------------------------
def _main(argv: list[str]) -> int:
    """``python3 tests/peers.py git-http|giftless|dulwich-lfs [WORKDIR]``: run one until Ctrl-C."""
    kinds = ("git-http", "giftless", "dulwich-lfs")
    if not argv or argv[0] not in kinds:
        print(f"usage: python3 tests/peers.py {'|'.join(kinds)} [WORKDIR]", file=sys.stderr)
        return 2
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix=f"lfsreg-{argv[0]}-"))
    with contextlib.ExitStack() as stack:
        if argv[0] == "dulwich-lfs":
            server: object = stack.enter_context(start_dulwich_lfs(workdir))
        else:
            server = stack.enter_context(start_giftless(workdir / "giftless"))
            if argv[0] == "git-http":
                server = stack.enter_context(start_git_http(workdir / "git-http", lfs=server))
                print(f"example repo: {server.create_repo('org/example').auth_url}")
        print(server, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})  # blocked in __main__: Ctrl-C lands here
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(_main(sys.argv[1:]))
