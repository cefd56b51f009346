"""The library's imports point one way, and only the modules meant to talk to a system import its client.

core values -> streams, codecs and the image contracts -> git / LFS / SSH clients -> registry
format -> transports (every image source and destination) -> operations -> api -> cli.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lfsreg"
MODULES = sorted(p for p in PKG.rglob("*.py"))


@functools.cache  # each test asks about every module (~300 parametrized tests): parse each file once
def _name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _name(path) if path.name == "__init__.py" else _name(path).rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.module:  # "from .. import x" imports the module x, not the package
                out.add(mod)
            out.update(f"{mod}.{alias.name}" for alias in node.names)
    return frozenset(out)


@functools.cache
def _module_names() -> frozenset[str]:
    return frozenset(_name(p) for p in MODULES)


# Who may import a system's client library.
ALLOWED = {
    "click": ("lfsreg.cli",),
    "rich": ("lfsreg.cli",),
    "dulwich": ("lfsreg.git",),
    # hosts: the hosts' REST APIs; distribution: the OCI distribution-API client (docker:// registries)
    "requests": ("lfsreg.lfs", "lfsreg.transports.engine_client", "lfsreg.hosts", "lfsreg.distribution"),
    "urllib3": ("lfsreg.lfs", "lfsreg.git.transport", "lfsreg.transports.engine_client"),  # git.transport: under dulwich
    "paramiko": ("lfsreg.ssh", "lfsreg.git.ssh"),
    "cryptography": ("lfsreg.keys", "lfsreg.ssh", "lfsreg.signing"),
    "nacl": ("lfsreg.signing",),  # cosign's encrypted private keys (NaCl secretbox)
}

# Layers, lowest first: a module may import only from its own layer or lower ones.
LAYERS = [
    (
        "lfsreg.errors",
        "lfsreg.digest",
        "lfsreg.reference",
        "lfsreg.mediatypes",
        "lfsreg.manifest",
        "lfsreg.progress",
        "lfsreg.credentials",
        "lfsreg.watchdog",  # the one thread that fires request deadlines (git and LFS clients)
        "lfsreg.interrupts",  # sections a SIGTERM is deferred past (git opens repositories in one; the CLI defers)
    ),
    # lfsreg.pipeline: a stream read on a thread of its own (a layer's stages on several cores)
    (
        "lfsreg.compression",
        "lfsreg.zstd_frames",  # decoding independent zstd frames on a pool (compression's reader of zstd)
        "lfsreg.integrity",
        "lfsreg.pipeline",
        "lfsreg.staging",
        "lfsreg.layers",
        "lfsreg.image",
        "lfsreg.formats",
        "lfsreg.keys",
    ),
    # lfsreg.signing: signing keys and cosign's signature format (payload, .sig manifest, trust
    # policy): formats and cryptography like lfsreg.keys, no git or LFS; ops/sign.py uses it
    ("lfsreg.signing",),
    # lfsreg.distribution: the OCI distribution-API client beside the LFS client, whose HTTP session,
    # retry policy and bounded reads it reuses; the docker:// transport above is its only user
    ("lfsreg.git", "lfsreg.lfs", "lfsreg.ssh", "lfsreg.hosts", "lfsreg.distribution"),
    ("lfsreg.registry",),
    # where a registry lives: the backend of a location, LFS endpoint discovery and credentials
    # per host; above the registry format, which never knows where it is stored
    ("lfsreg.registry.location", "lfsreg.registry.endpoint"),
    ("lfsreg.transports",),
    ("lfsreg.ops", "lfsreg.describe"),
    (
        "lfsreg.api",
        "lfsreg.api_cost",
        "lfsreg.api_retention",
        "lfsreg.api_maintain",
        "lfsreg.api_serve",
        "lfsreg.api_sign",
    ),  # Registry mix-ins: api.py stays small
    # `lfsreg serve`: an HTTP server (the OCI distribution API) over the public API, below the CLI that starts it
    ("lfsreg.serve",),
    ("lfsreg", "lfsreg.cli", "lfsreg.__main__"),
]


def _layer(module: str) -> int:
    best = (-1, -1)
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = (i, len(prefix))
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best[0]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_system_clients_are_imported_only_where_allowed(path):
    name = _name(path)
    for imported in _imports(path):
        top = imported.split(".")[0]
        if top in ALLOWED:
            assert any(name == a or name.startswith(a + ".") for a in ALLOWED[top]), f"{name} imports {imported}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_imports_point_down(path):
    name = _name(path)
    mine = _layer(name)
    for imported in _imports(path):
        if not imported.startswith("lfsreg"):
            continue
        target = imported
        while target not in _module_names() and "." in target:
            target = target.rsplit(".", 1)[0]  # "from .x import Name" -> the module x
        assert _layer(target) <= mine, f"{name} (layer {mine}) imports {target} (layer {_layer(target)})"


@pytest.mark.parametrize("path", [p for p in MODULES if not _name(p).startswith("lfsreg.cli")], ids=lambda p: _name(p))
def test_library_never_prints(path):
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
    assert not calls, f"{_name(path)} calls print(); log or emit progress events instead"


def test_modules_stay_small():
    big = {_name(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 450}
    assert not big, f"modules over 450 lines: {big}"


def _module_of(imported: str) -> str:
    """The lfsreg module an imported name lives in: ``lfsreg.api.Registry`` -> ``lfsreg.api``."""
    names = _module_names()
    while imported not in names and "." in imported:
        imported = imported.rsplit(".", 1)[0]
    return imported


# What the CLI may use: the public API, its errors and progress events, and its own modules.
CLI_MAY_IMPORT = ("lfsreg", "lfsreg.api", "lfsreg.errors", "lfsreg.progress")


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith("lfsreg.cli")], ids=lambda p: _name(p))
def test_cli_uses_only_the_public_api(path):
    for imported in _imports(path):
        if not imported.startswith("lfsreg"):
            continue
        target = _module_of(imported)
        assert target in CLI_MAY_IMPORT or target.startswith("lfsreg.cli"), f"{_name(path)} imports {target}"


def test_no_import_cycles():
    graph = {_name(p): {_module_of(i) for i in _imports(p) if i.startswith("lfsreg")} - {_name(p)} for p in MODULES}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
