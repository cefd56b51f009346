"""cost: ``lfsreg du`` and ``verify`` on a large registry (default 3,000 images x 10 tags: 30,000 tagged images, one small layer each).

Per revision: one push of the whole archive into a new registry, then ``lfsreg du -s`` cold
(an empty cache: every tree, tag file and manifest read) and warm (the walk's memo from the run
before), ``du --format json`` (every row), and ``lfsreg verify`` (not ``--deep``; it keeps no
cache: every run is cold). Targets: ``du`` and ``verify`` under 2 s each (issue 10, on
``--du-images 30000 --du-tags 1``). The registry is built once per work directory and kept
between runs (``--du-rebuild`` builds it again): pushing 30,000 images takes minutes.
"""

from __future__ import annotations

import argparse

from tools.bench import image
from tools.bench.report import Check, at_most
from tools.bench.runner import MIB, rmtree, tree_bytes
from tools.bench.session import Session

DU_S = 2.0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--du-images", type=int, default=3000, help="cost: images in the du registry (default 3000)")
    ap.add_argument("--du-tags", type=int, default=10, help="cost: tags per image (default 10)")
    ap.add_argument("--du-reps", type=int, default=3, help="cost: repetitions of each du run")
    ap.add_argument("--du-rebuild", action="store_true", help="cost: push the du registry again even if it exists")


def run(s: Session) -> None:
    a = s.a
    cdir = s.work / "cost"
    cdir.mkdir(parents=True, exist_ok=True)
    arch = cdir / f"du-{a.du_images}x{a.du_tags}.docker.tar"
    if not arch.exists():
        image.scale_archive(arch, a.du_images, a.du_tags, prefix="du/img")
    info = s.data.setdefault("cost", {"images": a.du_images, "tags": a.du_tags})
    for lr in s.lfsregs:
        g, env = "cost", lr.env(s.env)
        repo = cdir / f"du-{a.du_images}x{a.du_tags}-{lr.name}.git"
        if a.du_rebuild or not (repo / "refs" / "heads" / "main").exists():
            rmtree(repo)
            push = s.lfsreg_step("cost.push", f"lfsreg push {a.du_images} images x {a.du_tags} tags (du registry)", g, lr)
            if not s.r.run(push, lr.cmd("push", str(repo), f"docker-archive:{arch}"), cwd=cdir, env=env).ok:
                continue
        info[f"registry [{lr.name}]"] = tree_bytes(repo)
        base = s.run_dir / f"cost-{lr.name}"
        rmtree(base)
        base.mkdir(parents=True)
        cold = s.lfsreg_step("cost.du_cold", "lfsreg du -s, empty cache (cold)", g, lr)
        warm = s.lfsreg_step("cost.du_warm", "lfsreg du -s, memo of the run before (warm)", g, lr)
        rows = s.lfsreg_step("cost.du_json", "lfsreg du --format json (every row, warm)", g, lr)
        check = s.lfsreg_step("cost.verify", "lfsreg verify (not --deep)", g, lr)
        for k in range(a.du_reps):
            fresh = {**env, "LFSREG_CACHE": str(base / f"cache-{k}")}
            s.r.run(cold, lr.cmd("du", "-s", str(repo)), cwd=base, env=fresh, stdout=base / "cold.out")
            s.r.run(warm, lr.cmd("du", "-s", str(repo)), cwd=base, env=fresh, stdout=base / "warm.out")
            s.r.run(rows, lr.cmd("du", "--format", "json", str(repo)), cwd=base, env=fresh, stdout=base / "rows.out")
            s.r.run(check, lr.cmd("verify", str(repo)), cwd=base, env=fresh)
        if (base / "warm.out").exists():
            info[f"du [{lr.name}]"] = (base / "warm.out").read_text().strip().splitlines()[0]
        if not s.a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        for key in ("cost.du_cold", "cost.du_warm", "cost.du_json", "cost.verify"):
            if f"{key}@{lr.name}" in s.r.steps:
                label = s.r.steps[f"{key}@{lr.name}"].label.split(" [")[0]
                out.append(at_most(s, f"[{lr.name}] cost: {label}", f"{key}@{lr.name}", DU_S))
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("cost")
    if not info:
        return []
    lines = [f"cost: du on {info['images']} images x {info['tags']} tags"]
    for k, v in info.items():
        if k.startswith("registry"):
            lines.append(f"  {k}: {v[0] / MIB:.1f} MiB in {v[1]} files")
        elif k.startswith("du"):
            lines.append(f"  {k}: {v}")
    return [*lines, ""]
