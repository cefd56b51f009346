"""retention: gc of a local registry of many images (default 1,000) down to a few live ones (default 100).

Per revision: the images are pushed in ``--retention-batches`` pushes (one commit each; every image
one layer of ``--retention-kib`` random KiB, no two sharing a blob), ``lfsreg prune`` untags all
but the first ``--retention-live`` images, then ``lfsreg gc --grace 0`` rewrites the branch and
deletes what no tag needs. Reported: the time of prune and gc, the bytes gc freed, the registry's
``du`` before and after, and the live bytes (what the remaining tags need). No target: the issue
asks for the numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from tools.bench import image
from tools.bench.report import Check, at_most
from tools.bench.runner import MIB, rmtree
from tools.bench.session import Session


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--retention-images", type=int, default=1000, help="retention: images pushed")
    ap.add_argument("--retention-live", type=int, default=100, help="retention: images left after prune")
    ap.add_argument("--retention-batches", type=int, default=10, help="retention: pushes (commits) the images come in")
    ap.add_argument("--retention-kib", type=int, default=64, help="retention: KiB of random payload per image")


def _du(path: object) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) * 1024


def run(s: Session) -> None:
    a = s.a
    n, live, batches = a.retention_images, min(a.retention_live, a.retention_images), max(1, min(a.retention_batches, a.retention_images))
    rdir = s.work / "retention"
    rdir.mkdir(parents=True, exist_ok=True)
    per = -(-n // batches)
    archives = []
    for b in range(batches):
        count = min(per, n - b * per)
        path = rdir / f"batch-{n}-{a.retention_kib}k-{b}.docker.tar"
        if not path.exists():
            # image.scale_archive numbers from 0 per archive: a prefix per batch keeps the names distinct
            image.scale_archive(path, count, 1, prefix=f"ret/b{b:03d}-img", salt=f"retention-{b}", payload=a.retention_kib * 1024)
        archives.append((path, count))
    keep = set()
    for b, (_, count) in enumerate(archives):
        for i in range(count):
            if len(keep) < live:
                keep.add(f"ret/b{b:03d}-img{i:0{max(4, len(str(count - 1)))}d}")
    info = s.data.setdefault("retention", {"images": n, "live": live, "batches": batches, "payload_kib": a.retention_kib})
    for lr in s.lfsregs:
        g, env = "retention", lr.env(s.env)
        base = s.run_dir / f"retention-{lr.name}"
        rmtree(base)
        base.mkdir(parents=True)
        repo = base / "reg.git"
        pushes = s.lfsreg_step("retention.push", f"lfsreg push {n} images in {batches} pushes (setup)", g, lr, lfsreg=False)
        ok = True
        for path, _ in archives:
            ok = s.r.run(pushes, lr.cmd("push", str(repo), f"docker-archive:{path}"), cwd=base, env=env).ok and ok
        if not ok:
            continue
        listed = subprocess.run(lr.cmd("tags", str(repo), "--format", "json"), env=env, capture_output=True, text=True, check=False)
        names = sorted({row["name"] for row in json.loads(listed.stdout or "[]")})
        doomed = [name for name in names if name not in keep]
        prune = s.lfsreg_step("retention.prune", f"lfsreg prune: {len(doomed)} of {len(names)} images untagged", g, lr)
        whole = len(keep) // per  # batches kept whole: one glob each; the rest by name
        globs = [f"ret/b{b:03d}-*" for b in range(whole)] + sorted(k for k in keep if int(k[5:8]) >= whole)
        args = ["prune", str(repo), "--format", "json", "--image", "ret/*"] + [x for glob in globs for x in ("--protect", f"{glob}:*")]
        out = base / "prune.json"
        if not s.r.run(prune, lr.cmd(*args), cwd=base, env=env, stdout=out).ok:
            continue
        info[f"prune bytes_freed [{lr.name}]"] = json.loads(out.read_text())["bytes_freed"]
        info[f"du before gc [{lr.name}]"] = _du(repo)
        gc = s.lfsreg_step("retention.gc", f"lfsreg gc: {n} images -> {live} live", g, lr)
        out = base / "gc.json"
        if not s.r.run(gc, lr.cmd("gc", str(repo), "--grace", "0", "--format", "json"), cwd=base, env=env, stdout=out).ok:
            continue
        result = json.loads(out.read_text())
        info[f"du after gc [{lr.name}]"] = _du(repo)
        for key in (
            "lfs_bytes_freed",
            "lfs_deleted",
            "live_bytes",
            "git_bytes_before",
            "git_bytes_after",
            "commits_before",
            "commits_after",
        ):
            info[f"{key} [{lr.name}]"] = result[key]
        if not s.a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        out.append(at_most(s, f"[{lr.name}] retention: prune", f"retention.prune@{lr.name}", None))
        out.append(at_most(s, f"[{lr.name}] retention: gc", f"retention.gc@{lr.name}", None))
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("retention")
    if not info:
        return []
    lines = [f"retention: {info['images']} images ({info['payload_kib']} KiB each, {info['batches']} pushes) -> {info['live']} live"]
    for key, value in info.items():
        if "[" in key:
            shown = f"{value / MIB:.2f} MiB ({value} B)" if "bytes" in key or key.startswith("du") else str(value)
            lines.append(f"  {key}: {shown}")
    return [*lines, ""]
