"""Shared helpers for lfsreg's tests: sample locations, independent image readers, CLI runner.

Everything here reads images with the standard library (``tarfile``, ``json``, ``hashlib``,
``gzip``) and ``zstandard`` only -- never with lfsreg's own parsers -- so a test compares
lfsreg's output with what an independent reader sees.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import importlib
import io
import json
import os
import pkgutil
import posixpath
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard
from clirun import CLI_TIMEOUT, check_no_crash, check_no_crash_text, run_cli  # noqa: F401 (re-exported: tests import them from conftest)
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from gitenv import MISSING_MARK, missing_prerequisite
from tracefix import install as _retry_trace_installs
from untraced import c_tracer

_retry_trace_installs()  # before any test starts a thread: see tests/tracefix.py

# real servers on 127.0.0.1 (tests/peers/); Hypothesis untraced (tests/fuzztrace.py); long modules first (tests/longest_first.py)
pytest_plugins = ["peers", "fuzztrace", "longest_first"]

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS.parent / "fixtures"
# Real samples written by other tools live beside the checkout in ../shared/FORMATS (CI has
# them there); LFSREG_FORMATS points elsewhere, e.g. for a clone made in another directory.
FORMATS = Path(os.environ.get("LFSREG_FORMATS") or Path(__file__).resolve().parents[2] / "shared" / "FORMATS")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
LAYER_TYPE_FOR = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"


# -- locating samples --------------------------------------------------------------------------
_SAMPLES_STEP = "the real samples are ../shared/FORMATS beside the checkout (LFSREG_FORMATS names another directory)"
_FIXTURES_STEP = "fixtures/ is part of the checkout (tools/make_fixtures.sh rebuilds it)"


def formats(name: str) -> Path:
    """A sample from ../shared/FORMATS (the test fails when it is missing)."""
    if not FORMATS.is_dir():
        missing_prerequisite(f"sample directory {FORMATS} not found", _SAMPLES_STEP)
    path = FORMATS / name
    if not path.exists():
        missing_prerequisite(f"sample {path} not found", _SAMPLES_STEP)
    return path


def fixture(name: str) -> Path:
    """A file or directory under fixtures/ (the test fails when it is missing)."""
    path = FIXTURES / name
    if not path.exists():
        missing_prerequisite(f"fixture {path} not found", _FIXTURES_STEP)
    return path


def sample(kind: str, name: str) -> Path:
    """``kind`` is ``"formats"`` or ``"fixtures"``."""
    return formats(name) if kind == "formats" else fixture(name)


# -- hashing and compression -------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compression_of(data: bytes) -> str:
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def decompress(data: bytes) -> bytes:
    kind = compression_of(data)
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return data


def assert_plain_tar(data: bytes, what: str) -> None:
    """``data`` is an uncompressed tar that Python's tarfile reads to the end."""
    assert compression_of(data) == "none", f"{what}: compressed, expected a plain tar"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        tar.getmembers()


# -- reading trees of files (directories and tars) ---------------------------------------------
class DirTree:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class TarTree:
    """All regular members of a (possibly gzip-compressed) tar, links resolved inside it."""

    def __init__(self, path: Path) -> None:
        self.files: dict[str, bytes] = {}
        self.links: dict[str, str] = {}
        self.raw_names: list[str] = []
        with tarfile.open(path, "r:*") as tar:
            for m in tar.getmembers():
                self.raw_names.append(m.name)
                name = posixpath.normpath(m.name)
                if m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    self.files[name] = f.read()
                elif m.issym():
                    self.links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                elif m.islnk():
                    self.links[name] = posixpath.normpath(m.linkname)

    def _resolve(self, name: str) -> str | None:
        name = posixpath.normpath(name)
        for _ in range(16):
            if name in self.files:
                return name
            if name not in self.links:
                return None
            name = self.links[name]
        return None

    def names(self) -> list[str]:
        return sorted(self.files)

    def exists(self, name: str) -> bool:
        return self._resolve(name) is not None

    def read(self, name: str) -> bytes:
        resolved = self._resolve(name)
        if resolved is None:
            raise KeyError(name)
        return self.files[resolved]


def open_tree(path: Path) -> DirTree | TarTree:
    return DirTree(path) if Path(path).is_dir() else TarTree(path)


# -- docker-archive ------------------------------------------------------------------------------
@dataclass
class ArchiveEntry:
    config: bytes
    repo_tags: list[str] | None
    layers: list[bytes]

    @property
    def diff_ids(self) -> list[str]:
        return json.loads(self.config)["rootfs"]["diff_ids"]


def read_docker_archive(path: Path) -> list[ArchiveEntry]:
    """Follow ``manifest.json`` as ``docker load`` does."""
    tree = open_tree(path)
    doc = json.loads(tree.read("manifest.json"))
    return [ArchiveEntry(tree.read(e["Config"]), e.get("RepoTags"), [tree.read(p) for p in e["Layers"]]) for e in doc]


def check_docker_archive_output(path: Path) -> list[ArchiveEntry]:
    """Read a docker-archive lfsreg wrote and check what ``docker load`` relies on."""
    tree = TarTree(path)
    for name in tree.raw_names:
        assert not name.startswith("/") and ".." not in name.split("/"), f"unsafe member {name!r}"
    entries = read_docker_archive(path)
    for entry in entries:
        diff_ids = entry.diff_ids
        assert len(entry.layers) == len(diff_ids)
        for i, (layer, diff_id) in enumerate(zip(entry.layers, diff_ids, strict=True)):
            assert_plain_tar(layer, f"{path}: layer {i}")
            assert sha256(layer) == diff_id, f"{path}: layer {i} does not hash to its diff_id"
    return entries


# -- OCI layouts ---------------------------------------------------------------------------------
def media_type_of(doc: dict) -> str:
    """A manifest's media type from its ``mediaType`` or, when absent, its shape."""
    declared = doc.get("mediaType")
    if declared:
        return declared
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


@dataclass
class FlatImage:
    """One image (manifest) under a root, with its config and layer blobs."""

    manifest_digest: str
    manifest: dict
    platform: str | None
    config: bytes
    layers: list[tuple[dict, bytes]] = field(default_factory=list)

    @property
    def diff_ids(self) -> list[str]:
        return json.loads(self.config).get("rootfs", {}).get("diff_ids", [])


class Layout:
    """An OCI image layout (directory or tar), read independently of lfsreg."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tree = open_tree(path)
        self.index = json.loads(self.tree.read("index.json"))

    @property
    def entries(self) -> list[dict]:
        return self.index.get("manifests") or []

    def entry(self, ref: str) -> dict:
        found = [e for e in self.entries if (e.get("annotations") or {}).get(REF_NAME) == ref]
        assert len(found) == 1, f"{self.path}: {len(found)} index.json entries with ref {ref!r}: {self.entries}"
        return found[0]

    def blob(self, digest: str) -> bytes:
        algorithm, hexdigest = digest.split(":")
        return self.tree.read(f"blobs/{algorithm}/{hexdigest}")

    def json_blob(self, digest: str) -> dict:
        return json.loads(self.blob(digest))

    def flatten(self, digest: str, platform: str | None = None) -> list[FlatImage]:
        """Every manifest under ``digest`` (itself, or an index's children, depth first)."""
        doc = self.json_blob(digest)
        if media_type_of(doc) in INDEX_TYPES:
            out = []
            for child in doc.get("manifests") or []:
                p = child.get("platform")
                out += self.flatten(child["digest"], f"{p['os']}/{p['architecture']}" if p else None)
            return out
        image = FlatImage(digest, doc, platform, self.blob(doc["config"]["digest"]))
        image.layers = [(d, self.blob(d["digest"])) for d in doc.get("layers") or []]
        return [image]


def _check_blob(layout: Layout, desc: dict) -> bytes:
    digest = desc["digest"]
    assert layout.tree.exists(f"blobs/{digest.replace(':', '/')}"), f"{layout.path}: referenced blob {digest} is missing"
    data = layout.blob(digest)
    assert len(data) == desc["size"], f"{layout.path}: blob {digest} has {len(data)} bytes, descriptor says {desc['size']}"
    assert sha256(data) == digest
    return data


def _check_manifest(layout: Layout, desc: dict, seen: set[str]) -> None:
    """Check a manifest or index descriptor and, recursively, everything it references."""
    data = _check_blob(layout, desc)
    if desc["digest"] in seen:
        return
    seen.add(desc["digest"])
    doc = json.loads(data)
    if media_type_of(doc) in INDEX_TYPES:
        for child in doc.get("manifests") or []:
            _check_manifest(layout, child, seen)
        return
    _check_blob(layout, doc["config"])
    for layer in doc.get("layers") or []:
        _check_blob(layout, layer)


def verify_layout(path: Path) -> Layout:
    """Every blob matches its name; every referenced blob exists with the right size."""
    layout = Layout(path)
    assert json.loads(layout.tree.read("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    for name in layout.tree.names():
        if name.startswith("blobs/"):
            _, algorithm, hexdigest = name.split("/")
            assert algorithm == "sha256"
            assert sha256(layout.tree.read(name)) == f"sha256:{hexdigest}", f"{path}: blob {name} does not match its name"
    seen: set[str] = set()
    for entry in layout.entries:
        _check_manifest(layout, entry, seen)
    return layout


# -- registry snapshots ----------------------------------------------------------------------------
def main_ref(repo: Path) -> bytes | None:
    try:
        return Repo(str(repo)).refs[b"refs/heads/main"]
    except (KeyError, NotGitRepository):
        return None


def commit_count(repo: Path) -> int:
    r = Repo(str(repo))
    head = main_ref(repo)
    return 0 if head is None else sum(1 for _ in r.get_walker(include=[head]))


def snapshot(repo: Path) -> tuple[bytes | None, dict[str, str]]:
    """``refs/heads/main`` and the sha256 of every file under the repository."""
    files = {}
    for p in sorted(Path(repo).rglob("*")):
        if p.is_file() or p.is_symlink():
            files[p.relative_to(repo).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return main_ref(repo), files


def lfs_objects(repo: Path) -> list[Path]:
    root = Path(repo) / "lfs" / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def tree_files(repo: Path, prefix: str) -> dict[str, bytes]:
    """Files under ``prefix`` in the tree of ``main`` (path -> content)."""
    r = Repo(str(repo))
    head = main_ref(repo)
    out: dict[str, bytes] = {}
    if head is None:
        return out
    for entry in r.object_store.iter_tree_contents(r[head].tree):
        path = entry.path.decode()
        if path.startswith(prefix):
            out[path] = r[entry.sha].as_raw_string()
    return out


# -- names ----------------------------------------------------------------------------------------
def familiar(ref: str) -> tuple[str, str]:
    """``docker.io/library/x`` -> ``("x", "latest")``: how a RepoTags entry names an image."""
    name, tag = ref, "latest"
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    for hub in ("docker.io/", "index.docker.io/"):
        if name.startswith(hub):
            name = name[len(hub) :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
    return name, tag


# Runs the CLI with an audit hook that kills the process the moment anything tries to start a
# program (subprocess, os.system, exec*, posix_spawn, spawn*), so even an absolute path such as
# /usr/bin/git is caught, not only a PATH lookup.
NO_SPAWN = """
import os, sys
def hook(event, args):
    if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"):
        os.write(2, f"SPAWN ATTEMPT: {event} {args!r}\\n".encode())
        os._exit(97)
sys.addaudithook(hook)
sys.argv = ["lfsreg", *sys.argv[1:]]
from lfsreg.cli import main
main()
"""


def python_only_path(tmp_path: Path) -> Path:
    """A ``bin`` directory holding only ``python``: this interpreter, with this environment.

    Run from a virtual environment, a bare symlink to ``sys.executable`` would start the base
    interpreter without the venv (Python finds ``pyvenv.cfg`` next to the path it was started
    by), so ``import lfsreg`` would find the checkout only from its root and otherwise whatever
    the base interpreter has installed. So the ``bin`` directory sits in a copy of the venv's
    frame: its ``pyvenv.cfg`` and a link to its ``lib`` (site-packages, with the editable
    install of the lfsreg under test).
    """
    root = tmp_path / "python-only"
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    if sys.prefix != sys.base_prefix:  # a venv
        venv = Path(sys.prefix)
        (root / "pyvenv.cfg").write_bytes((venv / "pyvenv.cfg").read_bytes())
        for lib in ("lib", "lib64"):
            if (venv / lib).exists():
                (root / lib).symlink_to((venv / lib).resolve(), target_is_directory=True)
    python = bindir / "python"
    python.symlink_to(sys.executable)
    return python


# -- the CLI ---------------------------------------------------------------------------------------
# run_cli (imported above from tests/clirun.py) runs the CLI in this process, or in a subprocess
# when asked, and fails the test on a Traceback or "Exception ignored" in its output.


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def concurrently(work: Callable[[int], object], count: int, timeout: float | None = None) -> list[BaseException]:
    """Runs ``work(0)`` ... ``work(count - 1)`` on as many threads at once; returns what they raised.

    A thread's exception (an ``assert`` too) is kept for the main thread to report, which a
    thread cannot do itself.
    """
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, describe(proc)
    check_no_crash(proc)


def assert_error(proc: subprocess.CompletedProcess, code: int | tuple[int, ...], *needles: str | tuple[str, ...]) -> str:
    """Exit ``code``; stderr is one ``lfsreg: error:`` line (+ optional ``hint:``) naming every needle.

    A tuple needle is satisfied by any one of its strings.
    """
    assert proc.returncode in (code if isinstance(code, tuple) else (code,)), describe(proc)
    check_no_crash(proc)
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 2, describe(proc)
    assert lines[0].startswith("lfsreg: error: "), describe(proc)
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), describe(proc)
    for needle in needles:
        options = needle if isinstance(needle, tuple) else (needle,)
        assert any(n in lines[0] for n in options), f"none of {options!r} named in the error line\n{describe(proc)}"
    return lines[0]


@pytest.fixture
def registry(tmp_path):
    """Path of a registry created by ``lfsreg init`` (in-process)."""
    import lfsreg

    path = tmp_path / "reg.git"
    lfsreg.Registry(str(path)).init()
    return path


@pytest.fixture
def populated(tmp_path):
    """Path of a registry holding acme/app:1.0 pushed from fixtures/app.oci (gzip layers, diff_id records).

    Named ``populated.git`` so a test can use it beside the empty ``registry``.
    """
    import lfsreg

    path = tmp_path / "populated.git"
    reg = lfsreg.Registry(str(path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    """End the run with what was not tested for want of a prerequisite (each such test failed)."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", []):
        text = getattr(report, "longreprtext", "")
        if MISSING_MARK in text:
            line = text[text.index(MISSING_MARK) :].splitlines()[0]
            counts[line] = counts.get(line, 0) + 1
    if counts:
        terminalreporter.section("NOT TESTED: missing prerequisites", sep="!", red=True, bold=True)
        for line, n in sorted(counts.items()):
            terminalreporter.write_line(f"{n:4d} test(s): {line}", red=True)


def _import_lfsreg() -> None:
    """Import every lfsreg module (and what each imports at module level: dulwich, click, requests, paramiko, ...)."""
    import lfsreg

    for info in pkgutil.walk_packages(lfsreg.__path__, "lfsreg."):
        if not info.name.endswith(".__main__"):  # that one runs the CLI
            importlib.import_module(info.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Collect untraced: under coverage (tools/test.sh), the collection of every xdist worker
    (importing ~180 test modules, expanding their parameters: pytest's and the tests' Python,
    which coverage does not measure) ran ~1.2 s of CPU longer with the trace function on (2.9 s
    instead of 1.7 s each; Python 3.11 runs every traced line ~3x slower, measured or not).
    Every lfsreg module is imported first, traced, so the lines that run at import (its
    definitions) are measured as before; test modules importing them later find them imported.
    The same switch as tests/fuzztrace.py (coverage's C tracer of this thread, else nothing)."""
    _import_lfsreg()
    tracer = c_tracer()
    if tracer is not None:
        tracer.stop()
    try:
        yield
    finally:
        if tracer is not None:
            tracer.start()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what exists once the tests are collected: a full garbage collection then walks
    only what the tests made since. ``run_cli`` collects after every in-process run (a dropped
    object's ``__del__`` must print into that run's capture), and a full collection over an
    xdist worker's whole heap took ~60 ms each time. Every lfsreg module was imported before
    the collection (:func:`pytest_collection`), so the modules the first tests would import are
    frozen too (the suite imports each of them anyway; ~0.4 s per worker)."""
    gc.collect()
    gc.freeze()
