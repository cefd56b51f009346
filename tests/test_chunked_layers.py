"""Layers over the registry's object limit are stored as chunks (issue 10, docs/format.md).

A tiny limit (1 MiB, or half a layer) stands in for GitHub's 2 GB. Round trips through a local
registry and nginx + git http-backend + giftless; stock git + git-lfs clone the registry and
check out every chunk clean; a registry without such layers is written exactly as before
(format version 1); a reader that knows only version 1 refuses a chunked registry in one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from conftest import lfs_objects, run_cli, tree_files
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import verify_docker_archive

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.registry import layout

MIB = 1 << 20
REF = "acme/big:1.0"


def _layer_tar(size: int, seed: str) -> bytes:
    buf = io.BytesIO()
    data = random.Random(seed).randbytes(size)  # incompressible: the stored layer stays this big
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("data/payload.bin")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def big_archive(path: Path, sizes: list[int], ref: str = REF) -> list[str]:
    """A docker-archive of one image whose plain layers hold ``sizes`` random bytes; returns the diff_ids."""
    return archive_of(path, [_layer_tar(size, f"{path.name}:{i}") for i, size in enumerate(sizes)], ref)


def archive_of(path: Path, layers: list[bytes], ref: str) -> list[str]:
    """A docker-archive at ``path`` of one image ``ref`` with these layer tars; returns the diff_ids."""
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": names}]).encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in [(config_name, config), *zip(names, layers, strict=True), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    return diff_ids


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp, **extra)


def _chunk_dirs(repo: Path) -> dict[str, list[str]]:
    """Chunked layers of the registry: layer hex -> its chunk pointer names."""
    out: dict[str, list[str]] = {}
    for path in tree_files(repo, "layers/"):
        parts = path.split("/")
        if len(parts[-1]) == layout.CHUNK_DIGITS:  # layers/sha256/<shards>/<layer hex>/<nnnnnn>, whatever the layout
            out.setdefault(parts[-2], []).append(parts[-1])
    return out


def _pulled_matches(repo, tmp: Path, diff_ids: list[str], env: dict[str, str]) -> None:
    out = tmp / "pulled.tar"
    proc = run_cli("pull", str(repo), REF, "-o", f"docker-archive:{out}", env=env)
    assert proc.returncode == 0, proc.stderr
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == diff_ids


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("big") / "big.docker.tar"
    return path, big_archive(path, [int(2.5 * MIB), 100 << 10])


def test_a_layer_over_the_limit_round_trips_as_chunks(archive, tmp_path):
    path, diff_ids = archive
    repo = tmp_path / "reg.git"
    env = _env(tmp_path)
    with lfsreg.Registry(str(repo)) as reg:
        result = reg.push([f"docker-archive:{path}"], object_limit=MIB)
    assert result.layers_uploaded == 2
    chunked = _chunk_dirs(repo)
    assert len(chunked) == 1  # the small layer is one object as always
    (layer_hex, names) = next(iter(chunked.items()))
    assert names == ["000000", "000001", "000002"]
    sizes = [o.stat().st_size for o in lfs_objects(repo)]
    assert max(sizes) <= MIB and len(sizes) == 4
    assert json.loads(tree_files(repo, layout.MARKER)[layout.MARKER]) == {
        "format": "lfsreg",
        "version": layout.NEW_VERSION,
    }  # chunks change no v3 or v4 marker
    # the chunks, in order, are the layer the manifest names
    pointers = [tree_files(repo, f"{layout.NEW.hex_path('layers', layer_hex)}/{n}") for n in names]
    oids = [next(iter(p.values())).decode().split("oid sha256:")[1].split("\n")[0] for p in pointers]
    joined = b"".join((repo / "lfs" / "objects" / o[:2] / o[2:4] / o).read_bytes() for o in oids)
    assert hashlib.sha256(joined).hexdigest() == layer_hex
    _pulled_matches(repo, tmp_path, diff_ids, env)
    oci = tmp_path / "out.oci"
    assert run_cli("pull", str(repo), REF, "-o", f"oci:{oci}", env=env).returncode == 0
    assert hashlib.sha256((oci / "blobs" / "sha256" / layer_hex).read_bytes()).hexdigest() == layer_hex
    assert run_cli("verify", str(repo), "--deep", env=env).returncode == 0
    # pushed again: nothing is read or uploaded, the chunks are reused (their diffids record holds)
    with lfsreg.Registry(str(repo)) as reg:
        again = reg.push([f"docker-archive:{path}"], object_limit=MIB)
    assert again.layers_uploaded == 0 and again.commit is None


def test_damaged_chunks_are_found(archive, tmp_path):
    path, _ = archive
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{path}"], object_limit=MIB)
    env = _env(tmp_path)
    middle = sorted(lfs_objects(repo), key=lambda p: p.stat().st_size)[-2]  # a full-size chunk
    data = bytearray(middle.read_bytes())
    data[7] ^= 1
    middle.write_bytes(bytes(data))
    assert run_cli("verify", str(repo), env=env).returncode == 0  # every chunk there with its size
    deep = run_cli("verify", str(repo), "--deep", env=env)
    assert deep.returncode == 1
    (line,) = deep.stdout.splitlines()
    assert line.startswith(f"{REF}: LFS object sha256:{middle.name}"), line
    proc = run_cli("pull", str(repo), REF, "-o", f"docker-archive:{tmp_path / 'x.tar'}", env=env)
    assert proc.returncode == 1 and not (tmp_path / "x.tar").exists()
    middle.unlink()
    proc = run_cli("verify", str(repo), env=env)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.endswith(": missing") and middle.name in line


def test_exact_multiples_and_a_limit_too_small(tmp_path):
    path = tmp_path / "even.docker.tar"
    big_archive(path, [MIB])
    repo = tmp_path / "reg.git"
    plain = tmp_path / "plain.git"
    with lfsreg.Registry(str(plain)) as reg:
        reg.push([f"docker-archive:{path}"], compression="none")
    (layer,) = lfs_objects(plain)
    half = layer.stat().st_size // 2  # tar sizes are multiples of 512: two chunks, no remainder
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{path}"], compression="none", object_limit=half)
    assert list(_chunk_dirs(repo).values()) == [["000000", "000001"]]
    assert sorted(p.stat().st_size for p in lfs_objects(repo)) == [half, half]
    with pytest.raises(lfsreg.UsageError, match="too small"):
        lfsreg.Registry(str(tmp_path / "none.git")).push([f"docker-archive:{path}"], object_limit=1000)
    assert not (tmp_path / "none.git").exists()


@pytest.mark.parametrize("version", [1, 3])
def test_a_registry_without_chunked_layers_is_unchanged(archive, tmp_path, version):
    """The same push without a limit, and with a limit no layer exceeds: the same tree, the version it was created with."""
    path, _ = archive
    trees = []
    for name, limit in (("nolimit.git", None), ("biglimit.git", 64 * MIB)):
        repo = tmp_path / name
        with lfsreg.Registry(str(repo)) as reg:
            reg.init(format_version=version)
            reg.push([f"docker-archive:{path}"], object_limit=limit)
        trees.append({**tree_files(repo, "")})
        assert tree_files(repo, layout.MARKER)[layout.MARKER] == f'{{\n  "format": "lfsreg",\n  "version": {version}\n}}\n'.encode()
    assert trees[0] == trees[1]
    depth = 3 + len(layout.layout_of(version).widths)  # layers/sha256/<shards>/<hex>
    assert not [p for p in trees[0] if p.startswith("layers/") and p.count("/") != depth - 1]


def test_a_reader_of_version_1_refuses_a_chunked_registry(archive, tmp_path, monkeypatch):
    path, _ = archive
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.init(format_version=1)  # a version 1 registry (a version 3 one is refused by such a reader anyway)
        reg.push([f"docker-archive:{path}"], object_limit=MIB)
    monkeypatch.setattr(layout, "KNOWN_VERSION", 1)  # what every lfsreg before chunked layers knows
    proc = run_cli("images", str(repo), env=_env(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == f"lfsreg: error: {repo}: registry format version 2 is not supported by this lfsreg"


@pytest.mark.interop
def test_stock_git_and_git_lfs_clone_a_chunked_registry_clean(archive, tmp_path):
    path, _ = archive
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.push([f"docker-archive:{path}"], object_limit=MIB)
    env = isolated_git_env(tmp_path)
    run_git(["clone", "--quiet", str(repo), "work"], cwd=tmp_path, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    work = tmp_path / "work"
    run_git(["lfs", "pull"], cwd=work, env=env)
    assert run_git(["status", "--porcelain"], cwd=work, env=env).stdout == b""
    run_git(["lfs", "fsck"], cwd=work, env=env)
    ((layer_hex, names),) = _chunk_dirs(repo).items()
    chunk_dir = work / layout.NEW.hex_path("layers", layer_hex)
    joined = b"".join((chunk_dir / n).read_bytes() for n in names)  # smudged: the chunks' bytes
    assert hashlib.sha256(joined).hexdigest() == layer_hex
    listed = run_git(["lfs", "ls-files", "--name-only"], cwd=work, env=env).stdout.decode().split()
    assert len(listed) == 4
    run_git(["fsck", "--strict"], cwd=repo, env=env)


@pytest.mark.interop
def test_chunks_through_giftless_and_a_stock_clone_over_http(archive, git_http_server, git_http_repo, tmp_path):
    path, diff_ids = archive
    creds = {"LFSREG_USERNAME": git_http_server.user, "LFSREG_PASSWORD": git_http_server.password}
    options = RemoteOptions(cache_dir=str(tmp_path / "cache")).resolve(creds)
    with lfsreg.Registry(git_http_repo.url, options=options) as reg:
        reg.push([f"docker-archive:{path}"], object_limit=MIB)
    stored = [p for p in git_http_repo.lfs_storage.iterdir() if p.is_file()]
    assert len(stored) == 4 and max(p.stat().st_size for p in stored) <= MIB  # giftless refused nothing
    fresh = _env(tmp_path / "fresh", **creds)
    _pulled_matches(git_http_repo.url, tmp_path, diff_ids, fresh)
    assert run_cli("verify", git_http_repo.url, "--deep", env=fresh).returncode == 0
    env = isolated_git_env(tmp_path)
    run_git(["clone", "--quiet", git_http_repo.auth_url, "work"], cwd=tmp_path, env=env)
    work = tmp_path / "work"
    assert run_git(["status", "--porcelain"], cwd=work, env=env).stdout == b""
    ((layer_hex, names),) = _chunk_dirs(git_http_repo.path).items()
    joined = b"".join((work / layout.NEW.hex_path("layers", layer_hex) / n).read_bytes() for n in names)
    assert hashlib.sha256(joined).hexdigest() == layer_hex
    # a copy to a local registry keeps the chunks and the format version
    local = tmp_path / "copy.git"
    proc = run_cli("copy", git_http_repo.url, str(local), env=fresh)
    assert proc.returncode == 0, proc.stderr
    assert _chunk_dirs(local) == _chunk_dirs(git_http_repo.path)
    assert json.loads(tree_files(local, layout.MARKER)[layout.MARKER])["version"] == layout.NEW_VERSION
    _pulled_matches(local, tmp_path, diff_ids, fresh)


def test_copy_cuts_whole_layers_to_the_destinations_limit(archive, tmp_path):
    path, diff_ids = archive
    src, dst = tmp_path / "src.git", tmp_path / "dst.git"
    with lfsreg.Registry(str(src)) as reg:
        reg.push([f"docker-archive:{path}"])  # no limit: stored whole
        first = reg.copy(str(dst), object_limit=MIB)
        again = reg.copy(str(dst), object_limit=MIB)
    assert not _chunk_dirs(src) and list(_chunk_dirs(dst).values()) == [["000000", "000001", "000002"]]
    assert max(p.stat().st_size for p in lfs_objects(dst)) <= MIB
    assert first.objects_copied == 4 and first.bytes_copied == sum(p.stat().st_size for p in lfs_objects(dst))
    assert again.objects_copied == 0 and again.commit is None  # the destination holds it (as chunks): nothing moves
    assert json.loads(tree_files(dst, layout.MARKER)[layout.MARKER])["version"] == layout.NEW_VERSION
    env = _env(tmp_path)
    _pulled_matches(dst, tmp_path, diff_ids, env)
    assert run_cli("verify", str(dst), "--deep", env=env).returncode == 0
