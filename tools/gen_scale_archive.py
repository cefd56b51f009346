#!/usr/bin/env python3
"""Write a synthetic multi-image docker-archive (legacy ``docker save`` layout).

Used by ``tools/bench.py`` (scale benchmark: 1,000 images x 10 tags pushed in one
``lfsreg push``) and importable by tests::

    from tools.gen_scale_archive import write_scale_archive
    images = write_scale_archive(tmp_path / "scale.tar", n_images=20, tags_per_image=3)

Layout of the tarball (what ``docker save`` of Docker < 25 writes, minus the optional
legacy ``<id>/`` v1 directories and ``repositories`` file)::

    manifest.json        [{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<hex>.tar"]}, ...]
    <hex>.json           image config; <hex> = sha256 of these exact bytes
    <hex>.tar            uncompressed layer tar; <hex> = sha256 = the config's rootfs.diff_ids[0]

Every image has ONE small layer whose content is unique (it contains the image index and
``salt``), so no two images share a blob.  Output is deterministic for given arguments
(fixed mtimes, uid/gid 0, content derived from the arguments).

Check with skopeo: ``skopeo inspect docker-archive:OUT.tar:scale/img0001:t0``.
CLI: ``python tools/gen_scale_archive.py OUT.tar --images 1000 --tags 10``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScaleImage", "main", "make_config", "make_layer", "write_scale_archive"]


@dataclass(frozen=True)
class ScaleImage:
    """One image written into the archive."""

    name: str  # repository, e.g. "scale/img0042"
    tags: tuple[str, ...] = ()  # full refs "scale/img0042:t0", ...
    config_digest: str = ""  # "sha256:<hex>" of the config bytes
    diff_id: str = ""  # "sha256:<hex>" of the (uncompressed) layer tar
    layer_size: int = 0  # bytes of the layer tar


def _tarinfo(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.type = tarfile.REGTYPE
    return ti


def make_layer(index: int, salt: str = "", payload_bytes: int = 0, name_prefix: str = "scale/img") -> bytes:
    """Return the bytes of a tiny, unique layer tar for image ``index``.

    The layer holds ``data/<prefix>-<index>.txt`` (a line naming the image) and, if
    ``payload_bytes`` > 0, ``data/payload.bin`` with that many pseudo-random bytes
    (deterministic for (salt, index)).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        d = tarfile.TarInfo("data/")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 0
        d.uname = d.gname = "root"
        tf.addfile(d)
        text = f"lfsreg scale image {name_prefix}{index} salt={salt!r}\n".encode()
        tag = name_prefix.replace("/", "-")
        tf.addfile(_tarinfo(f"data/{tag}{index}.txt", len(text)), io.BytesIO(text))
        if payload_bytes > 0:
            rnd = random.Random(f"{salt}:{name_prefix}:{index}")
            payload = rnd.randbytes(payload_bytes)
            tf.addfile(_tarinfo("data/payload.bin", len(payload)), io.BytesIO(payload))
    return buf.getvalue()


def make_config(diff_id: str, index: int, name: str) -> bytes:
    """Return compact JSON bytes of an image config with a single layer ``diff_id``."""
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "author": "lfsreg-bench",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.lfsreg.bench.index": str(index), "org.lfsreg.bench.name": name},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"lfsreg-bench scale layer {index}"}],
    }
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()


def write_scale_archive(
    path: str | os.PathLike[str],
    n_images: int = 1000,
    tags_per_image: int = 10,
    *,
    name_prefix: str = "scale/img",
    tag_prefix: str = "t",
    salt: str = "",
    payload_bytes: int = 0,
    width: int | None = None,
) -> list[ScaleImage]:
    """Write a docker-archive with ``n_images`` images of ``tags_per_image`` tags each.

    Image ``i`` is named ``f"{name_prefix}{i:0{width}d}"`` (width defaults to
    max(4, digits of n_images-1)) and tagged ``{tag_prefix}0`` .. ``{tag_prefix}{k-1}``.
    Written atomically (``path.tmp`` then rename).  Returns the images written.
    """
    if n_images < 1 or tags_per_image < 1:
        raise ValueError("n_images and tags_per_image must be >= 1")
    if width is None:
        width = max(4, len(str(n_images - 1)))
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    images: list[ScaleImage] = []
    manifest: list[dict[str, object]] = []
    with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(n_images):
            name = f"{name_prefix}{i:0{width}d}"
            layer = make_layer(i, salt=salt, payload_bytes=payload_bytes, name_prefix=name_prefix)
            layer_hex = hashlib.sha256(layer).hexdigest()
            config = make_config(f"sha256:{layer_hex}", i, name)
            config_hex = hashlib.sha256(config).hexdigest()
            tags = [f"{name}:{tag_prefix}{t}" for t in range(tags_per_image)]
            tf.addfile(_tarinfo(f"{layer_hex}.tar", len(layer), 0o444), io.BytesIO(layer))
            tf.addfile(_tarinfo(f"{config_hex}.json", len(config), 0o444), io.BytesIO(config))
            manifest.append({"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": [f"{layer_hex}.tar"]})
            images.append(
                ScaleImage(
                    name=name,
                    tags=tuple(tags),
                    config_digest=f"sha256:{config_hex}",
                    diff_id=f"sha256:{layer_hex}",
                    layer_size=len(layer),
                )
            )
        mbytes = json.dumps(manifest, separators=(",", ":")).encode()
        tf.addfile(_tarinfo("manifest.json", len(mbytes), 0o444), io.BytesIO(mbytes))
    os.replace(tmp, out)
    return images


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output tarball (docker-archive)")
    ap.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    ap.add_argument("--tags", type=int, default=10, help="tags per image (default 10)")
    ap.add_argument("--prefix", default="scale/img", help="image name prefix (default scale/img)")
    ap.add_argument("--tag-prefix", default="t", help="tag prefix (default t -> t0..t9)")
    ap.add_argument("--salt", default="", help="string mixed into layer content (new salt = new blobs)")
    ap.add_argument("--payload-bytes", type=int, default=0, help="extra pseudo-random bytes per layer")
    ap.add_argument("--quiet", "-q", action="store_true")
    a = ap.parse_args(argv)
    imgs = write_scale_archive(
        a.out,
        a.images,
        a.tags,
        name_prefix=a.prefix,
        tag_prefix=a.tag_prefix,
        salt=a.salt,
        payload_bytes=a.payload_bytes,
    )
    if not a.quiet:
        size = os.path.getsize(a.out)
        print(f"wrote {a.out}: {len(imgs)} images x {a.tags} tags, {size} bytes; first ref {imgs[0].tags[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
