"""Building hostile inputs for tests: OCI layouts from JSON documents, and registries edited
behind lfsreg's back with stock git plumbing (as another tool, or an attacker, could).

Nothing here uses lfsreg's own parsers or writers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from conftest import FIXTURES

from lfsreg.registry import layout

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
APP = FIXTURES / "app.oci"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def app_manifest() -> tuple[dict, bytes]:
    """The descriptor and bytes of the fixture image app.oci's manifest."""
    (entry,) = json.loads((APP / "index.json").read_bytes())["manifests"]
    data = (APP / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    return {"mediaType": entry["mediaType"], "digest": entry["digest"], "size": entry["size"]}, data


def descriptor(data: bytes, media_type: str = OCI_INDEX) -> dict:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def nested_indexes(levels: int, fanout: int) -> tuple[dict, list[bytes]]:
    """``levels`` indexes, each listing the next ``fanout`` times; the last lists app's manifest.

    Returns the root descriptor and every index document (root first). The graph has
    ``levels + 1`` distinct nodes but ``fanout ** levels`` paths.
    """
    child, _ = app_manifest()
    docs: list[bytes] = []
    for _ in range(levels):
        data = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child] * fanout})
        docs.append(data)
        child = descriptor(data)
    return child, docs[::-1]


def oci_layout(path: Path, blobs: list[bytes], index_json: bytes | dict) -> Path:
    """A copy of app.oci at ``path`` with extra ``blobs`` and the given ``index.json``."""
    shutil.copytree(APP, path)
    for data in blobs:
        (path / "blobs" / "sha256" / digest_of(data).split(":")[1]).write_bytes(data)
    raw = index_json if isinstance(index_json, bytes) else dumps(index_json)
    (path / "index.json").write_bytes(raw)
    return path


def _git(repo: Path, *args: str, data: bytes | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True, env=env, timeout=120)
    return proc.stdout.decode().strip()


def edit_registry(repo: Path, files: dict[str, bytes | None], tmp: Path) -> None:
    """Commit ``files`` (path -> content, ``None`` deletes) onto ``main`` of a bare registry."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "edit-index"), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp)}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    _git(repo, "read-tree", "main", env=env)
    written = sorted(p for p, data in files.items() if data is not None)
    spool = tmp / "edit-blobs"
    spool.mkdir(exist_ok=True)
    for i, path in enumerate(written):
        (spool / str(i)).write_bytes(files[path])  # type: ignore[arg-type]
    names = "".join(f"{spool / str(i)}\n" for i in range(len(written))).encode()
    shas = _git(repo, "hash-object", "-w", "--stdin-paths", data=names, env=env).split()
    info = "".join(f"100644 {sha}\t{path}\n" for sha, path in zip(shas, written, strict=True))
    info += "".join(f"0 {'0' * 40}\t{path}\n" for path, data in files.items() if data is None)
    _git(repo, "update-index", "--index-info", data=info.encode(), env=env)
    shutil.rmtree(spool)
    tree = _git(repo, "write-tree", env=env)
    commit = _git(repo, "commit-tree", tree, "-p", "main", "-m", "edited behind lfsreg's back", env=env)
    _git(repo, "update-ref", "refs/heads/main", commit, env=env)
    os.unlink(tmp / "edit-index")


def blob_path(digest: str) -> str:
    """Where the registry format keeps a manifest, index or config (docs/format.md)."""
    hexpart = digest.split(":")[1]
    return layout.NEW.hex_path("blobs", hexpart)


def tag_path(name: str, tag: str) -> str:
    return f"{layout.NEW.tags_dir(name)}/{tag}"


def docker_archive_with(src: Path, dest: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the ``docker save`` tarball ``src`` with some members' contents replaced."""
    import io
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for info in tin:
            if info.name in replace:
                data = replace[info.name]
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
            else:
                tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
    return dest
