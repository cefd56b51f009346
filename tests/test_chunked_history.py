"""History tools on chunked layers: ``rollback`` restores a chunked image whole (its chunk
pointers, its chunks still stored), and the image closure names every chunk (what ``prune``
counts and ``gc`` keeps)."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from gitenv import cli_env
from imageverify import verify_docker_archive
from test_chunked_layers import MIB, REF, _chunk_dirs, big_archive

import lfsreg
from lfsreg.git.store import GitStore
from lfsreg.registry import layout
from lfsreg.registry.closure import Closure


def _env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp)


def test_rollback_restores_a_chunked_image(tmp_path):
    first, second = tmp_path / "one.tar", tmp_path / "two.tar"
    old = big_archive(first, [int(1.5 * MIB)])
    big_archive(second, [int(1.2 * MIB)])
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{first}"], object_limit=MIB)
        chunked = _chunk_dirs(repo)
        reg.remove([REF])  # the tag is gone, and with it the chunk pointers' reason to stay in a trimmed tree
        reg.push([f"docker-archive:{second}"], object_limit=MIB)
        result = reg.rollback(REF, steps=1)
    assert result.commit is not None
    out = tmp_path / "back.tar"
    proc = run_cli("pull", str(repo), REF, "-o", f"docker-archive:{out}", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == old
    assert all(_chunk_dirs(repo)[hexd] == names for hexd, names in chunked.items())
    assert run_cli("verify", str(repo), "--deep", env=_env(tmp_path)).returncode == 0


def test_the_closure_of_a_chunked_image_names_each_chunk(tmp_path):
    path = tmp_path / "one.tar"
    big_archive(path, [int(2.5 * MIB), 10 << 10])
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{path}"], object_limit=MIB)
        view = reg.view()
        digest = view.resolve(lfsreg.ImageRef.parse(REF))
    git = GitStore.open(str(repo))
    try:
        snap = git.snapshot(git.head())
        needs = Closure(str(repo), layout.NEW).of(digest, snap.read)
    finally:
        git.close()
    ((hexd, names),) = _chunk_dirs(repo).items()
    chunk_paths = {f"{layout.NEW.layer_path(lfsreg.Digest('sha256', hexd))}/{n}" for n in names}
    assert chunk_paths <= set(needs.layers)
    objects = {p.name: p.stat().st_size for p in (repo / "lfs" / "objects").rglob("*") if p.is_file()}
    assert {o.oid: o.size for o in needs.layers.values()} == objects  # every stored object, chunks included
