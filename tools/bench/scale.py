"""scale: one registry of many images (default 1,000 images x 10 tags, one small layer each).

Per revision: ``lfsreg push`` of the whole archive at once; ``lfsreg tags`` and ``images`` (text
and JSON); a small fresh image pushed into that registry and into an empty one, alternating.
Targets: every listing < 1 s; the push into the full registry no slower than into the empty
one (within ``--noise``).
"""

from __future__ import annotations

import argparse
import json
import subprocess

from tools.bench import image
from tools.bench.report import Check, at_most, ratio
from tools.bench.runner import MIB, rmtree, tree_bytes
from tools.bench.session import Session

LIST_S = 1.0
LISTINGS = {"tags": ["tags"], "tagsj": ["tags", "--format", "json"], "images": ["images"], "imagesj": ["images", "--format", "json"]}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--scale-images", type=int, default=1000, help="scale: images in the registry")
    ap.add_argument("--scale-tags", type=int, default=10, help="scale: tags per image")
    ap.add_argument("--scale-reps", type=int, default=3, help="scale: repetitions of the listings and the small pushes")
    ap.add_argument("--fresh-kib", type=int, default=1024, help="scale: payload of the small fresh image (KiB)")
    ap.add_argument("--noise", type=float, default=0.10, help="scale: tolerance of the 'no slower' check (0.10 = 10%%)")


def run(s: Session) -> None:
    a = s.a
    sdir = s.work / "scale"
    sdir.mkdir(parents=True, exist_ok=True)
    arch = sdir / f"scale-{a.scale_images}x{a.scale_tags}.docker.tar"
    if not arch.exists():
        image.scale_archive(arch, a.scale_images, a.scale_tags)
    fresh = [sdir / f"fresh-{k}-{a.fresh_kib}k.docker.tar" for k in range(a.scale_reps)]
    for k, path in enumerate(fresh):
        if not path.exists():
            image.scale_archive(path, 1, 1, prefix="fresh/img", salt=f"fresh-{k}", payload=a.fresh_kib * 1024)
    info = s.data.setdefault("scale", {"archive_bytes": arch.stat().st_size})
    for lr in s.lfsregs:
        g, env = "scale", lr.env(s.env)
        push = s.lfsreg_step("scale.push", f"lfsreg push {a.scale_images} images x {a.scale_tags} tags", g, lr)
        base = s.run_dir / f"scale-{lr.name}"
        rmtree(base)
        base.mkdir(parents=True)
        repo = base / "full.git"
        subprocess.run(lr.cmd("init", str(repo)), env=env, capture_output=True, check=False)
        if not s.r.run(push, lr.cmd("push", str(repo), f"docker-archive:{arch}"), cwd=base, env=env).ok:
            continue
        info[f"registry [{lr.name}]"] = tree_bytes(repo)
        for kind, args in LISTINGS.items():
            step = s.lfsreg_step(f"scale.{kind}", f"lfsreg {' '.join(args)}", g, lr)
            out = base / f"{kind}.out"
            for _ in range(a.scale_reps):
                s.r.run(step, lr.cmd(*args, str(repo)), cwd=base, env=env, stdout=out)
            if step.ok and kind.endswith("j"):
                info[f"{kind} entries [{lr.name}]"] = len(json.loads(out.read_text()))
        for k, path in enumerate(fresh):
            empty = base / f"empty-{k}.git"
            subprocess.run(lr.cmd("init", str(empty)), env=env, capture_output=True, check=False)
            pair = [("scale.fresh_empty", "push a small fresh image -> empty registry", empty)]
            pair.append(("scale.fresh_full", f"push a small fresh image -> the {a.scale_images}-image registry", repo))
            for key, label, target in pair if k % 2 == 0 else pair[::-1]:  # neither side always gets the warmer cache
                step = s.lfsreg_step(key, label, g, lr)
                s.r.run(step, lr.cmd("push", str(target), f"docker-archive:{path}"), cwd=base, env=env)
        if not s.a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        for kind in LISTINGS:
            key = f"scale.{kind}@{lr.name}"
            if key in s.r.steps:
                out.append(at_most(s, f"[{lr.name}] scale: {s.r.steps[key].label.split(' [')[0]}", key, LIST_S))
        c = ratio(s, f"[{lr.name}] scale: small push into full / into empty", f"scale.fresh_full@{lr.name}", f"scale.fresh_empty@{lr.name}")
        limit = 1.0 + s.a.noise
        if c.value != "-":
            c.target, c.met = f"<= {limit:.2f}x", float(c.value.split("x")[0]) <= limit
        out += [c, at_most(s, f"[{lr.name}] scale: push of {s.a.scale_images} images in one archive", f"scale.push@{lr.name}", None)]
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("scale")
    if not info:
        return []
    lines = [f"scale: {s.a.scale_images} images x {s.a.scale_tags} tags, archive {info['archive_bytes'] / MIB:.1f} MiB"]
    for k, v in info.items():
        if k.startswith("registry"):
            lines.append(f"  {k}: {v[0] / MIB:.1f} MiB in {v[1]} files")
        elif k != "archive_bytes":
            lines.append(f"  {k}: {v} (expected {s.a.scale_images * s.a.scale_tags} tags / {s.a.scale_images} images)")
    return [*lines, ""]
