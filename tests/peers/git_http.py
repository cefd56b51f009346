"""Git smart HTTP: nginx + fcgiwrap + stock ``git http-backend`` behind HTTP Basic auth [+ giftless].

PYTEST_DONT_REWRITE

With a giftless upstream, ``/ORG/REPO.git/info/lfs/`` is proxied to it: one base URL for git and
LFS, Basic auth on both except giftless's signed object hrefs (``.../info/lfs/objects/storage/``),
whose ``Bearer`` JWT *replaces* the client's Basic credentials on the transfer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitenv import require_tool, run_git

from peers.giftless import GiftlessServer, repo_path
from peers.nginx import nginx_config, nginx_starter, proxy_block
from peers.probes import batch_answers, http_request
from peers.procs import HOST, Proc, missing, started, tool, wait_healthy

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Default HTTP Basic credentials of ``git_http_server``.
DEFAULT_USER = "tester"
DEFAULT_PASSWORD = "s3cret-pw"

_REPO_NAME_OK = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$")


def _git_http_backend() -> str:
    git = require_tool("git")
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not os.access(backend, os.X_OK):
        missing(f"git http-backend not found at {backend}", "git")
    return str(backend)


@dataclass(frozen=True)
class PeerRepo:
    """A bare repository served by :class:`GitHttpServer`."""

    name: str  # "ORG/REPO" (no ".git")
    path: Path  # the bare repository on disk
    url: str  # http://127.0.0.1:PORT/ORG/REPO.git -- no credentials
    auth_url: str  # the same with "user:password@"
    lfs_url: str  # url + "/info/lfs" (what git-lfs derives by itself)
    lfs_storage: Path | None  # giftless's directory for this repo's objects (None without LFS)

    def main(self) -> str | None:
        """The commit ``refs/heads/main`` points at (git http-backend writes loose refs), ``None`` before the first push."""
        ref = self.path / "refs" / "heads" / "main"
        return ref.read_text().strip() if ref.exists() else None

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
        name = repo_path(name)
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


_LOCATIONS = """\
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
    fcgiwrap = tool("fcgiwrap")
    htpasswd = tool("htpasswd")
    backend = _git_http_backend()
    if not Path("/etc/nginx/fastcgi_params").exists():
        missing("/etc/nginx/fastcgi_params (Debian nginx-common)", "nginx")

    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "repos"
    root.mkdir(exist_ok=True)
    (workdir / "home").mkdir(exist_ok=True)
    # unix socket paths are limited to 108 bytes: fall back to a short private dir
    sock_dir = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="lfsreg-fcgi-"))
    sock = sock_dir / "fcgiwrap.sock"
    fcgi_log = workdir / "fcgiwrap.log"
    subprocess.run([htpasswd, "-b", "-c", "-m", str(workdir / "htpasswd"), user, password], check=True, capture_output=True)

    # X-Forwarded-Proto: https behind peers.tls's front (giftless builds its hrefs from it and Host)
    lfs_conf = _NGINX_LFS.format(proxy=proxy_block(lfs.url)) if lfs else ""
    locations = _LOCATIONS.format(run=workdir, lfs=lfs_conf, backend=backend, root=root, sock=sock)

    # fcgiwrap runs git-http-backend (as the user who runs the tests) for each request;
    # -f: its stderr goes to nginx's error log
    if sock.exists():
        sock.unlink()
    fcgi = Proc([fcgiwrap, "-f", "-c", "4", "-s", f"unix:{sock}", "-p", backend], fcgi_log, cwd=workdir)
    try:
        wait_healthy([fcgi], sock.exists, "fcgiwrap", [fcgi_log])

        # a throwaway repo for the health check
        env = _bare_git_env(workdir)
        probe = root / "_health" / "probe.git"
        if not probe.exists():
            run_git(["init", "-q", "--bare", probe], cwd=workdir, env=env)

        start = nginx_starter(workdir, lambda port: nginx_config(workdir, port, locations, workers=2, connections=512))

        def healthy(port: int) -> bool:
            base = f"http://{HOST}:{port}"
            status, _ = http_request("GET", f"{base}/_health/probe.git/info/refs?service=git-upload-pack", auth=(user, password), timeout=2)
            if status != 200:
                return False
            if lfs is None:
                return True
            return batch_answers(f"{base}/_health/probe.git/info/lfs/objects/batch", "upload", auth=(user, password))

        port, procs = started(start, healthy, "nginx (git http-backend)")
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
