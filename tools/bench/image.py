"""The images the benchmarks move: a big one of real files, many tiny ones, and a reader to verify pulls.

Both are written as a docker-archive (``docker save``'s legacy layout: ``manifest.json``,
``<sha256>.json`` configs, ``<sha256>.tar`` uncompressed layers) by the standard library.
The big image's layers hold real files copied from ``/usr``, ``/opt``... (as compressible as
real images), weighted per layer; it is cached under the work directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GEN_VERSION = 2  # bump when the recipe changes (invalidates cached images)
LAYER_SPECS: list[tuple[str, float, list[str]]] = [
    ("base-libs", 0.30, ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]),
    ("usr-share", 0.20, ["/usr/share"]),
    ("binaries", 0.15, ["/usr/bin", "/usr/sbin", "/usr/lib/git-core", "/usr/libexec"]),
    ("python", 0.20, ["/usr/lib/python3", "/usr/lib/python3.11", "/usr/local/lib", "/root/.pyenv/versions"]),
    ("app", 0.15, ["/usr/lib/jvm", "/opt/wheels", "/usr/lib/llvm-14", "/opt"]),
    ("extra", 0.10, ["/usr/lib/google-cloud-sdk", "/opt", "/usr/include"]),
]
FALLBACK_ROOTS = ["/usr", "/opt", "/etc", "/var/lib"]


def _member(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = size, 0o444, 0, "root", "root"
    return ti


def write_archive(path: Path, images: Iterable[tuple[list[str], list[Path | bytes], dict[str, Any]]]) -> None:
    """Write a docker-archive of ``(repo_tags, layer tars (files or bytes), config extras)`` images, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    manifest = []
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for tags, layers, extra in images:
            names, diff_ids = [], []
            for layer in layers:
                data = layer if isinstance(layer, bytes) else None
                h = hashlib.sha256()
                if data is not None:
                    h.update(data)
                else:
                    with open(layer, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
                names.append(f"{h.hexdigest()}.tar")
                diff_ids.append(f"sha256:{h.hexdigest()}")
                size = len(data) if data is not None else os.path.getsize(layer)  # type: ignore[arg-type]
                with open(layer, "rb") if data is None else io.BytesIO(data) as f:  # type: ignore[arg-type]
                    tf.addfile(_member(names[-1], size), f)
            config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z", "author": "lfsreg-bench", **extra}
            config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            cbytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
            cname = f"{hashlib.sha256(cbytes).hexdigest()}.json"
            tf.addfile(_member(cname, len(cbytes)), io.BytesIO(cbytes))
            manifest.append({"Config": cname, "RepoTags": tags, "Layers": names})
        mbytes = json.dumps(manifest, separators=(",", ":")).encode()
        tf.addfile(_member("manifest.json", len(mbytes)), io.BytesIO(mbytes))
    os.replace(tmp, path)


# -- the big image ---------------------------------------------------------------------------------
def _select(roots: list[str], cap: int, used: set[str], skip: str) -> tuple[list[str], int]:
    """Files and symlinks under ``roots`` (sorted walk, not yet ``used``) worth about ``cap`` tar bytes."""
    picked: list[str] = []
    cur, slack = 0, min(256 * 1024, cap // 50)
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(os.path.realpath(root)):
            dirnames.sort()
            if dirpath.startswith(skip) or cur >= cap - slack:
                dirnames[:] = []
                continue
            for n in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                p = os.path.join(dirpath, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                readable = stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK)
                cost = 512 + (-(-st.st_size // 512) * 512 if readable else 0)
                if p in used or not (readable or stat.S_ISLNK(st.st_mode)) or cur + cost > cap:
                    continue
                picked.append(p)
                used.add(p)
                cur += cost
    return picked, cur


def _layer_tar(path: Path, files: list[str]) -> None:
    seen: set[str] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in files:
            parts = Path(p).parts[1:]
            for i in range(1, len(parts)):  # parent directories first, once
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
                    tf.addfile(ti)
            try:
                tf.add(p, arcname="/".join(parts), recursive=False)
            except OSError:
                continue


def big_image(workdir: Path, size_mib: int, layers: int, ref: str, log: Any) -> Path:
    """The cached docker-archive of ``ref``: ``layers`` layers of real files, ``size_mib`` MiB in all."""
    out = workdir / "image" / f"big-{size_mib}mib-{layers}l-v{GEN_VERSION}.docker.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    specs = LAYER_SPECS[:layers]
    total_w = sum(w for _n, w, _r in specs)
    used: set[str] = set()
    tars = []
    for i, (name, weight, roots) in enumerate(specs):
        cap = int(size_mib * 1024 * 1024 * weight / total_w)
        files, got = _select(roots, cap, used, str(workdir))
        if got < cap * 0.95:
            more, got2 = _select(FALLBACK_ROOTS, cap - got, used, str(workdir))
            files, got = files + more, got + got2
        log(f"generate: layer {i + 1} {name}: {len(files)} files, {got / 1048576:.1f} MiB")
        tars.append(out.parent / f"layer-{i}.tar")
        _layer_tar(tars[-1], files)
    cfg = {"config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}
    write_archive(out, [([ref], list(tars), cfg)])
    for t in tars:
        t.unlink()
    return out


# -- many tiny images ------------------------------------------------------------------------------
def scale_archive(path: Path, n_images: int, n_tags: int, *, prefix: str = "scale/img", salt: str = "", payload: int = 0) -> None:
    """``n_images`` images of ``n_tags`` tags each, one small layer each, no two sharing a blob (deterministic)."""
    width = max(4, len(str(n_images - 1)))

    def image(i: int) -> tuple[list[str], list[Path | bytes], dict[str, Any]]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            text = f"lfsreg scale image {prefix}{i} salt={salt!r}\n".encode()
            tf.addfile(_member(f"data/{prefix.replace('/', '-')}{i}.txt", len(text)), io.BytesIO(text))
            if payload:
                data = random.Random(f"{salt}:{prefix}:{i}").randbytes(payload)
                tf.addfile(_member("data/payload.bin", len(data)), io.BytesIO(data))
        name = f"{prefix}{i:0{width}d}"
        return [f"{name}:t{t}" for t in range(n_tags)], [buf.getvalue()], {"config": {"Labels": {"org.lfsreg.bench.name": name}}}

    write_archive(path, (image(i) for i in range(n_images)))


# -- reading and verifying -------------------------------------------------------------------------
@dataclass
class ArchiveImage:
    tags: list[str]
    config_digest: str
    diff_ids: list[str]
    layers: list[str]  # member names


def read_archive(path: Path) -> list[ArchiveImage]:
    """The images of a docker-archive (manifest and configs; layers are not read)."""
    with tarfile.open(path, "r:") as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        out = []
        for ent in manifest:
            cbytes = tf.extractfile(ent["Config"]).read()  # type: ignore[union-attr]
            diff_ids = json.loads(cbytes)["rootfs"]["diff_ids"]
            out.append(ArchiveImage(ent.get("RepoTags") or [], "sha256:" + hashlib.sha256(cbytes).hexdigest(), diff_ids, ent["Layers"]))
        return out


def short_ref(ref: str) -> str:
    for pre in ("docker.io/library/", "docker.io/", "localhost/"):
        ref = ref.removeprefix(pre)
    return ref


def find(path: Path, ref: str) -> ArchiveImage:
    """The image tagged ``ref`` in a docker-archive.

    Raises:
        LookupError: No image has that tag.

    """
    images = read_archive(path)
    for img in images:
        if short_ref(ref) in {short_ref(t) for t in img.tags}:
            return img
    raise LookupError(f"no image tagged {ref} in {path} ({[i.tags for i in images]})")


def verify_pull(path: Path, ref: str, expect: ArchiveImage, *, hash_layers: bool = True) -> str | None:
    """Why the pulled docker-archive ``path`` does not hold ``expect`` as ``ref`` (None: it does)."""
    try:
        got = find(path, ref)
    except (OSError, LookupError, KeyError, ValueError, tarfile.TarError) as e:
        return f"cannot read pulled archive: {type(e).__name__}: {e}"
    if (got.config_digest, got.diff_ids) != (expect.config_digest, expect.diff_ids):
        return f"config {got.config_digest} / diff_ids differ from the pushed image's {expect.config_digest}"
    if hash_layers:
        with tarfile.open(path, "r:") as tf:
            for member, diff_id in zip(got.layers, got.diff_ids, strict=True):
                f, h = tf.extractfile(member), hashlib.sha256()
                while f is not None and (chunk := f.read(1 << 22)):
                    h.update(chunk)
                if f"sha256:{h.hexdigest()}" != diff_id:
                    return f"layer {member} hashes to {h.hexdigest()}, not {diff_id}"
    return None
