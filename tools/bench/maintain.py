"""verify: ``lfsreg verify`` (not ``--deep``) and ``lfsreg copy`` on a scale registry.

The registry is the scale benchmark's kind (one small layer per image, ``--verify-tags`` tags
each), by default 3,000 images x 10 tags: 30,000 tags. Per revision: one push; ``verify``
``--reps`` times (target: under 2 s); a whole copy into an empty local registry, then the same
copy again (nothing to move).
"""

from __future__ import annotations

import argparse
import json
import subprocess

from tools.bench import image
from tools.bench.report import Check, at_most
from tools.bench.runner import rmtree
from tools.bench.session import Session

VERIFY_S = 2.0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--verify-images", type=int, default=3000, help="verify: images in the registry (default 3000)")
    ap.add_argument("--verify-tags", type=int, default=10, help="verify: tags per image (default 10)")


def run(s: Session) -> None:
    a = s.a
    sdir = s.work / "scale"
    sdir.mkdir(parents=True, exist_ok=True)
    arch = sdir / f"scale-{a.verify_images}x{a.verify_tags}.docker.tar"
    if not arch.exists():
        image.scale_archive(arch, a.verify_images, a.verify_tags)
    info = s.data.setdefault("verify", {"tags": a.verify_images * a.verify_tags})
    for lr in s.lfsregs:
        g, env = "verify", lr.env(s.env)
        base = s.run_dir / f"verify-{lr.name}"
        rmtree(base)
        base.mkdir(parents=True)
        repo = base / "reg.git"
        push = s.lfsreg_step("verify.push", f"lfsreg push {a.verify_images} images x {a.verify_tags} tags", g, lr)
        subprocess.run(lr.cmd("init", str(repo)), env=env, capture_output=True, check=False)
        if not s.r.run(push, lr.cmd("push", str(repo), f"docker-archive:{arch}"), cwd=base, env=env).ok:
            continue
        step = s.lfsreg_step("verify.verify", f"lfsreg verify ({a.verify_images * a.verify_tags} tags)", g, lr)
        for _ in range(a.reps):
            s.r.run(step, lr.cmd("verify", str(repo)), cwd=base, env=env)
        out = base / "verify.json"
        check = s.lfsreg_step("verify.json", "lfsreg verify --format json", g, lr)
        if s.r.run(check, lr.cmd("verify", str(repo), "--format", "json"), cwd=base, env=env, stdout=out).ok:
            report = json.loads(out.read_text())
            info[f"verified [{lr.name}]"] = f"{report['tags']} tags, {report['objects']} objects, {len(report['problems'])} problems"
        copy = s.lfsreg_step("verify.copy", "lfsreg copy (every tag, into an empty local registry)", g, lr)
        again = s.lfsreg_step("verify.copy_again", "lfsreg copy again (nothing to move)", g, lr)
        dest = base / "copy.git"
        s.r.run(copy, lr.cmd("copy", str(repo), str(dest)), cwd=base, env=env)
        s.r.run(again, lr.cmd("copy", str(repo), str(dest)), cwd=base, env=env)
        if not s.a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        key = f"verify.verify@{lr.name}"
        if key in s.r.steps:
            out.append(at_most(s, f"[{lr.name}] verify: {s.r.steps[key].label.split(' [')[0]}", key, VERIFY_S))
        for name in ("copy", "copy_again"):
            key = f"verify.{name}@{lr.name}"
            if key in s.r.steps:
                out.append(at_most(s, f"[{lr.name}] verify: {s.r.steps[key].label.split(' [')[0]}", key, None))
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("verify")
    if not info:
        return []
    lines = [f"verify: a registry of {s.a.verify_images} images x {s.a.verify_tags} tags ({info['tags']} tags)"]
    lines += [f"  {k}: {v}" for k, v in info.items() if k != "tags"]
    return [*lines, ""]
