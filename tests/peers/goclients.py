"""Go-built registry clients: ``crane``, ``oras`` and the OCI distribution-spec conformance suite.

PYTEST_DONT_REWRITE

``tools/install-test-deps.sh`` builds each at the version pinned in ``tools/peers/go-tools.txt``
into ``$LFSREG_PEERS/go-NAME-VERSION/bin/NAME`` (the conformance suite is a Go *test* package:
its binary is the ``go test -c`` output, ``bin/conformance.test``). :func:`go_tool` returns the
path, or fails the test naming the install step (never a skip: a missing peer is a failure).

Running them against a plain-HTTP registry on 127.0.0.1:

* crane: ``crane --insecure copy SRC DST`` (``--insecure`` allows http); credentials with
  ``crane auth login HOST -u U -p P`` into ``$DOCKER_CONFIG/config.json`` (:func:`docker_config`).
* oras: ``oras push --plain-http HOST/NAME:TAG FILE:TYPE`` / ``oras pull --plain-http``;
  ``-u U -p P`` or the same docker config.
* conformance: env ``OCI_ROOT_URL``, ``OCI_NAMESPACE``, ``OCI_USERNAME``/``OCI_PASSWORD``,
  ``OCI_TEST_PULL=1`` ``OCI_TEST_PUSH=1`` ``OCI_TEST_CONTENT_DISCOVERY=1``
  ``OCI_TEST_CONTENT_MANAGEMENT=1``, ``OCI_REPORT_DIR``; run ``conformance.test`` (Ginkgo flags
  like ``-test.v``); see the suite's README for the rest.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from peers.giftless import peers_dir
from peers.procs import missing

GO_TOOLS_FILE = Path(__file__).resolve().parents[2] / "tools" / "peers" / "go-tools.txt"


def go_pins() -> dict[str, tuple[str, str]]:
    """``{name: (package, version)}`` from ``tools/peers/go-tools.txt``."""
    pins: dict[str, tuple[str, str]] = {}
    for line in GO_TOOLS_FILE.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 3:
            pins[fields[0]] = (fields[1], fields[2])
    return pins


def go_tool_path(name: str) -> Path:
    """Where the install script puts ``name`` (whether or not it is there)."""
    _, version = go_pins()[name]
    binary = "conformance.test" if name == "conformance" else name
    return peers_dir() / f"go-{name}-{version}" / "bin" / binary


def go_tool(name: str) -> str:
    """Path of ``crane``, ``oras`` or ``conformance`` (the conformance test binary); else fail the test."""
    path = go_tool_path(name)
    if not path.is_file():
        package, version = go_pins()[name]
        missing(f"{name} {path} ({package}@{version}) not found (the script builds it with go)")
    return str(path)


def crane() -> str:
    return go_tool("crane")


def oras() -> str:
    return go_tool("oras")


def conformance_suite() -> str:
    return go_tool("conformance")


def docker_config(directory: Path, auths: dict[str, tuple[str, str]]) -> Path:
    """Write ``directory/config.json`` with ``auths`` (``{host: (user, password)}``) and return ``directory``.

    The format every docker-config reader takes (crane, oras, skopeo, lfsreg): ``{"auths": {HOST:
    {"auth": base64("USER:PASSWORD")}}}``; point ``DOCKER_CONFIG`` at the returned directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entries = {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for host, (u, p) in auths.items()}
    config = directory / "config.json"
    config.write_text(json.dumps({"auths": entries}))
    config.chmod(0o600)
    return directory
