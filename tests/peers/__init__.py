"""Real servers for the test suite, started on 127.0.0.1 (a pytest plugin: fixtures + helpers).

(PYTEST_DONT_REWRITE: no asserts here; lets test modules import it before pytest does.)

Use it from a test module or conftest with ``pytest_plugins = ["peers"]``; every name is
importable from ``peers`` itself. One module per server (quirks worth knowing in each docstring):

* :mod:`peers.git_http` -- ``git_http_server`` (session): GitHub-style git + LFS on one base URL
  behind HTTP Basic auth (nginx + fcgiwrap + stock ``git http-backend`` over bare repos
  ``http://127.0.0.1:PORT/ORG/REPO.git``, ``/ORG/REPO.git/info/lfs/...`` proxied to giftless);
  ``git_http_repo`` (function): a fresh, empty bare repo on it.
* :mod:`peers.giftless` -- ``giftless_server`` (session): giftless 0.6.2 (uWSGI), anonymous
  read/write; the LFS endpoint of ``ORG/REPO`` is ``http://127.0.0.1:PORT/ORG/REPO.git/info/lfs``.
* :mod:`peers.seaweedfs` -- ``seaweedfs_server`` (session): SeaweedFS's S3 gateway (``weed server -s3``),
  bucket ``lfs``, SigV4 key of its own; ``giftless_s3_server`` (session): giftless with its objects
  in that bucket (presigned S3 hrefs); ``git_http_s3_server`` (session): ``git_http_server``'s setup
  (nginx + git http-backend, Basic auth) in front of ``giftless_s3_server``.
* :mod:`peers.dulwich_lfs` -- ``dulwich_lfs_server`` (session): no auth, endpoint = its root URL.
* :mod:`peers.sshd` -- ``sshd_server`` (session): OpenSSH over ``git_http_server``'s repos;
  ``add_key(repo, access="rw"|"ro", lfs="authenticate"|"transfer"|"scutiger"|"none")`` makes a deploy key
  (``transfer``: the test server :mod:`peers.lfs_transfer_server`; ``scutiger``: the real one).
* :mod:`peers.tls` -- ``tls_certs`` (session): a throwaway CA (+ another one) and server certificates
  generated in-process; ``tls_front`` / ``tls_front_expired`` / ``tls_front_foreign`` / ``tls_front_wrong_name``
  (session): nginx serving HTTPS in front of ``git_http_server`` with a good, an expired, another CA's
  and another host name's certificate.
* :mod:`peers.distribution` -- ``distribution_registry`` / ``distribution_registry_htpasswd`` /
  ``distribution_registry_token`` (session): Debian's docker-registry (distribution 2.8) on
  ``http://127.0.0.1:PORT``, anonymous / HTTP Basic / bearer tokens from our
  :mod:`peers.token_server`; each a :class:`DistributionServer` (``.host``, ``.creds``, ``.ref(name, tag)``,
  ``.token_requests()``, ``.access_log()``). Use a repository name of your own per test.
* :mod:`peers.goclients` -- ``crane()``, ``oras()``, ``conformance_suite()``: paths of the Go-built
  clients ``tools/install-test-deps.sh`` pins (a missing one fails the test); ``docker_config(dir, auths)``.
* :mod:`peers.engine` -- ``start_engine(root)``: podman's Docker Engine API on a unix socket.
* :mod:`peers.procs` (process groups, ports, tool lookup) and :mod:`peers.probes` (HTTP probes).

The ``start_*`` context managers start private instances (e.g. for a test that needs its own
user/password, or that stops a server on purpose). Each server runs as process groups of our
own, logs under a pytest temp dir, is health-checked before it is handed out and stopped with
SIGTERM (SIGKILL after 10 s). A missing tool (nginx, fcgiwrap, htpasswd, git http-backend, the
giftless venv from ``tools/install-test-deps.sh``) fails the test, naming the install step
(``gitenv.missing_prerequisite``). By hand: ``python3 tests/peers git-http [WORKDIR]``.

Sharing: a shared server is a ``scope="session"`` fixture here, so each pytest-xdist worker
(``tools/test.sh`` runs cores + 1) starts its own set on the first test that asks for it, and
only then. They are not shared across workers on purpose: starting every peer of this module
costs ~1 s of CPU per worker (measured), less than a cross-process lock, state file and
last-one-out teardown would save, and tests read a server's own logs (sshd logins, nginx access
log) without other workers' traffic in them. A new peer does the same: a ``start_*`` context
manager in its own module, a session fixture in this file; each test isolates itself on it with
names of its own (``git_http_repo``: a fresh repository per test, ``sshd_server.add_key``: a key
per test) and counts from a mark it takes first (``len(commands())``, the log's size), since
other tests of the same worker use the server too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from peers.distribution import REGISTRY_PASSWORD, REGISTRY_USER, DistributionServer, TokenServer, start_distribution
from peers.dulwich_lfs import DulwichLfsServer, start_dulwich_lfs
from peers.engine import Engine, start_engine
from peers.giftless import GIFTLESS_SECRET, GiftlessServer, giftless_venv, peers_dir, start_giftless
from peers.git_http import DEFAULT_PASSWORD, DEFAULT_USER, GitHttpServer, PeerRepo, start_git_http, use_credential_store
from peers.goclients import conformance_suite, crane, docker_config, go_tool, oras
from peers.probes import EMPTY_OID, LFS_HEADERS, LFS_MEDIA_TYPE, http_request, lfs_batch_body
from peers.procs import HOST, START_TIMEOUT, STOP_TIMEOUT, free_port, log_tail
from peers.seaweedfs import SeaweedServer, start_seaweedfs
from peers.sshd import SshKey, SshServer, start_sshd
from peers.tls import ServerCert, TlsCerts, TlsFront, make_certs, start_tls_front

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "EMPTY_OID",
    "GIFTLESS_SECRET",
    "HOST",
    "LFS_HEADERS",
    "LFS_MEDIA_TYPE",
    "REGISTRY_PASSWORD",
    "REGISTRY_USER",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "DistributionServer",
    "DulwichLfsServer",
    "Engine",
    "GiftlessServer",
    "GitHttpServer",
    "PeerRepo",
    "SshKey",
    "SeaweedServer",
    "ServerCert",
    "SshServer",
    "TlsCerts",
    "TlsFront",
    "TokenServer",
    "conformance_suite",
    "crane",
    "distribution_registry",
    "distribution_registry_htpasswd",
    "distribution_registry_token",
    "docker_config",
    "dulwich_lfs_server",
    "free_port",
    "giftless_server",
    "giftless_venv",
    "giftless_s3_server",
    "git_http_repo",
    "git_http_s3_server",
    "git_http_server",
    "go_tool",
    "http_request",
    "lfs_batch_body",
    "log_tail",
    "make_certs",
    "oras",
    "peers_dir",
    "sshd_server",
    "start_distribution",
    "start_dulwich_lfs",
    "start_engine",
    "seaweedfs_server",
    "start_giftless",
    "start_git_http",
    "start_seaweedfs",
    "start_sshd",
    "start_tls_front",
    "use_credential_store",
]


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
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """SeaweedFS's S3 gateway with bucket ``lfs`` for the whole session (~3.5 s to start)."""
    with start_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def giftless_s3_server(tmp_path_factory: pytest.TempPathFactory, seaweedfs_server: SeaweedServer) -> Iterator[GiftlessServer]:
    """giftless (anonymous read/write) storing its objects in ``seaweedfs_server``'s bucket."""
    with start_giftless(tmp_path_factory.mktemp("giftless-s3"), s3=seaweedfs_server) as server:
        yield server


@pytest.fixture(scope="session")
def git_http_s3_server(tmp_path_factory: pytest.TempPathFactory, giftless_s3_server: GiftlessServer) -> Iterator[GitHttpServer]:
    """git http-backend + giftless-over-S3 on one base URL, HTTP Basic auth; LFS objects in SeaweedFS."""
    with start_git_http(tmp_path_factory.mktemp("git-http-s3"), lfs=giftless_s3_server) as server:
        yield server


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


@pytest.fixture(scope="session")
def distribution_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionServer]:
    """docker-registry (distribution 2.8), anonymous read/write, for the whole session."""
    with start_distribution(tmp_path_factory.mktemp("registry-anon"), "none") as server:
        yield server


@pytest.fixture(scope="session")
def distribution_registry_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionServer]:
    """docker-registry behind HTTP Basic auth (``.user``/``.password``, ``.creds``)."""
    with start_distribution(tmp_path_factory.mktemp("registry-htpasswd"), "htpasswd") as server:
        yield server


@pytest.fixture(scope="session")
def distribution_registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionServer]:
    """docker-registry behind our token server (bearer flow; ``.user``/``.password``, no anonymous pull)."""
    with start_distribution(tmp_path_factory.mktemp("registry-token"), "token") as server:
        yield server


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TlsCerts:
    """The test CAs and server certificates, generated once per session."""
    return make_certs(tmp_path_factory.mktemp("tls-certs"))


def _front(factory: pytest.TempPathFactory, name: str, server: GitHttpServer, cert: ServerCert) -> Iterator[TlsFront]:
    with start_tls_front(factory.mktemp(name), server.url, cert) as front:
        yield front


@pytest.fixture(scope="session")
def tls_front(tmp_path_factory: pytest.TempPathFactory, git_http_server: GitHttpServer, tls_certs: TlsCerts) -> Iterator[TlsFront]:
    """HTTPS (a certificate of ``tls_certs.ca``) in front of ``git_http_server``."""
    yield from _front(tmp_path_factory, "tls-front", git_http_server, tls_certs.good)


@pytest.fixture(scope="session")
def tls_front_expired(tmp_path_factory: pytest.TempPathFactory, git_http_server: GitHttpServer, tls_certs: TlsCerts) -> Iterator[TlsFront]:
    """HTTPS in front of ``git_http_server`` with an expired certificate of ``tls_certs.ca``."""
    yield from _front(tmp_path_factory, "tls-front-expired", git_http_server, tls_certs.expired)


@pytest.fixture(scope="session")
def tls_front_foreign(tmp_path_factory: pytest.TempPathFactory, git_http_server: GitHttpServer, tls_certs: TlsCerts) -> Iterator[TlsFront]:
    """HTTPS in front of ``git_http_server`` with a certificate of another CA (``tls_certs.other_ca``)."""
    yield from _front(tmp_path_factory, "tls-front-foreign", git_http_server, tls_certs.foreign)


@pytest.fixture(scope="session")
def tls_front_wrong_name(
    tmp_path_factory: pytest.TempPathFactory, git_http_server: GitHttpServer, tls_certs: TlsCerts
) -> Iterator[TlsFront]:
    """HTTPS in front of ``git_http_server`` with a certificate of ``tls_certs.ca`` for another host name."""
    yield from _front(tmp_path_factory, "tls-front-wrong-name", git_http_server, tls_certs.wrong_name)
