"""partial: a pull or push costs what the image costs, not what the registry holds (issue 13, items 1-2).

One big registry (``--scale-images`` x ``--scale-tags`` small images, as ``scale`` builds, plus
one small image ``bench/small:1``) served by the suite's git http-backend + giftless twice: with
``uploadpack.allowFilter`` (partial fetch) and without (the whole tree, as before); and a
registry holding only the small image (and one holding only one ``scale/`` image), served
without filters: a fetch of their whole tiny tree is their cheapest read. Every step is a fresh ``lfsreg`` process; bytes are what
nginx served for the step (git and LFS).

* cold pull of ``bench/small:1`` from each, and of one ``scale/`` image (whose name sits in the
  big ``repositories/scale`` directory) from the big registry and from one holding only it;
* warm pull of the same tag (the pull's cache): one ref query (protocol v0's refs advertisement, one GET);
* cold push of a new small image into each (a fresh copy of each registry per repetition), under a
  new name of its own (``bench/fresh``) and under a new name in the big ``scale/`` namespace (into the
  big registry and into the one holding only one ``scale/`` image);
* ``tags`` and ``images`` of the whole registry, warm; ``tags REPO NAME`` cold.

Targets (issue 13): cold pull and push from/into the big registry at most 2x the bytes and
1.5x the time of the same against the one-image registry; the warm pull one ref query; the
listings under 1 s warm; ``tags REPO NAME`` under 0.3 s cold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tools.bench import https, image
from tools.bench.report import Check, at_most, ratio
from tools.bench.revs import Lfsreg
from tools.bench.runner import MIB, rmtree
from tools.bench.session import Session

BYTES_X, TIME_X, LIST_S, TAGS_NAME_S = 2.0, 1.5, 1.0, 0.3
SMALL = "bench/small:1"
SCALE_NEW = "scale/fresh:1"  # a new name in the big namespace
REF_QUERY = 1  # git requests of a warm pull: the refs advertisement (v0: no ls-refs)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--partial-images", type=int, default=3000, help="partial: images in the big registry (issue 13: 30000)")
    ap.add_argument("--partial-tags", type=int, default=3, help="partial: tags per image")
    ap.add_argument("--partial-kib", type=int, default=16, help="partial: payload of the small image (KiB)")


def _lfsreg(lr: Lfsreg, s: Session, cmd: list[str], **kw: Any) -> None:
    proc = subprocess.run(lr.cmd(*cmd), env=lr.env(s.env), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"lfsreg {' '.join(cmd[:2])}: {proc.stderr.strip()[-500:]}")


def _created_version(s: Session, lr: Lfsreg, pdir: Path) -> int:
    """The registry format version ``lr`` gives a new registry (its ``lfsreg.json`` after ``init``)."""
    probe = pdir / f"probe-{lr.name}.git"
    rmtree(probe)
    _lfsreg(lr, s, ["init", str(probe)])
    marker = subprocess.run(["git", "-C", str(probe), "show", "HEAD:lfsreg.json"], capture_output=True, text=True, check=True)
    rmtree(probe)
    return int(json.loads(marker.stdout)["version"])


def _build(s: Session, lr: Lfsreg) -> dict[str, Path]:
    """The local registries (kept in the work directory across runs): big, only-small, only-one-scale-image."""
    a = s.a
    pdir = s.work / "partial" / f"{a.partial_images}x{a.partial_tags}-{a.partial_kib}k"
    pdir.mkdir(parents=True, exist_ok=True)
    arch, small = pdir / "scale.docker.tar", pdir / "small.docker.tar"
    if not arch.exists():
        image.scale_archive(arch, a.partial_images, a.partial_tags)
    if not small.exists():
        image.scale_archive(small, 1, 1, prefix="bench/small", salt="partial", payload=a.partial_kib * 1024)
    # per registry format version (the one this lfsreg creates): a revision before version 3 cannot read a version 3 registry,
    # and the one-image registries must have the big one's layout (the same trees on a path cost what that layout costs)
    vdir = pdir / f"format-{_created_version(s, lr, pdir)}"
    regs = {"big": vdir / "big.git", "small": vdir / "small.git", "one": vdir / "one.git"}
    vdir.mkdir(exist_ok=True)
    one = f"scale/img{a.partial_images // 2:0{max(4, len(str(a.partial_images - 1)))}d}:t0"
    if not (regs["big"] / "refs" / "heads" / "main").exists():
        rmtree(regs["big"])
        s.r.log(f"partial: building the {a.partial_images}-image registry (once)")
        _lfsreg(lr, s, ["push", str(regs["big"]), f"docker-archive:{arch}"])
        _lfsreg(lr, s, ["push", str(regs["big"]), f"docker-archive:{small}", "--tag", SMALL])
    if not (regs["small"] / "refs" / "heads" / "main").exists():
        _lfsreg(lr, s, ["push", str(regs["small"]), f"docker-archive:{small}", "--tag", SMALL])
    if not (regs["one"] / "refs" / "heads" / "main").exists():
        _lfsreg(lr, s, ["copy", str(regs["big"]), str(regs["one"]), one])
    s.data.setdefault("partial", {})["one"] = one
    s.data["partial"].setdefault("format", {})[lr.name] = vdir.name
    return regs


def _serve(server: Any, local: Path, name: str, *, filters: bool) -> Any:
    """A copy of the local registry ``local`` on the server as ``bench/NAME`` (git objects hard-linked), its LFS objects in giftless."""
    repo = server.repo(f"bench/{name}")
    rmtree(repo.path)
    repo.path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(local), str(repo.path)], check=True)
    shutil.rmtree(repo.path / "lfs", ignore_errors=True)
    subprocess.run(["git", "-C", str(repo.path), "config", "http.receivepack", "true"], check=True)
    if filters:
        subprocess.run(["git", "-C", str(repo.path), "config", "uploadpack.allowFilter", "true"], check=True)
    assert repo.lfs_storage is not None
    rmtree(repo.lfs_storage)
    repo.lfs_storage.mkdir(parents=True)
    for obj in (local / "lfs" / "objects").rglob("*"):
        if obj.is_file() and len(obj.name) == 64:
            os.link(obj, repo.lfs_storage / obj.name)
    return repo


def _env(s: Session, lr: Lfsreg, server: Any, cache: Path) -> dict[str, str]:
    return lr.env({**s.env, "LFSREG_USERNAME": server.user, "LFSREG_PASSWORD": server.password, "LFSREG_CACHE": str(cache)})


def run(s: Session) -> None:
    server = https.start_servers(s)
    a = s.a
    fresh = s.work / "partial" / f"fresh-{a.partial_kib}k"
    fresh.mkdir(parents=True, exist_ok=True)
    built = {lr.name: _build(s, lr) for lr in s.lfsregs}
    for rep in range(a.reps):
        # revisions take turns within each repetition (first, then last): side by side under the same load
        for lr in s.lfsregs if rep % 2 == 0 else s.lfsregs[::-1]:
            _repetition(s, server, lr, built[lr.name], rep, fresh)
    if not a.keep:
        for lr in s.lfsregs:
            rmtree(s.run_dir / f"partial-{lr.name}")


def _repetition(s: Session, server: Any, lr: Lfsreg, regs: dict[str, Path], rep: int, fresh: Path) -> None:
    """One repetition of every step for one revision, against fresh copies of its registries on the server."""
    a = s.a
    one = s.data["partial"]["one"]
    g = f"partial {a.partial_images}x{a.partial_tags}"
    base = s.run_dir / f"partial-{lr.name}"
    rmtree(base)
    base.mkdir(parents=True)
    served = {
        "filter": _serve(server, regs["big"], f"big-filter-{lr.name}", filters=True),
        "nofilter": _serve(server, regs["big"], f"big-nofilter-{lr.name}", filters=False),
        # the one-image registries without filters: one fetch of their whole (tiny) tree is their cheapest read
        "small": _serve(server, regs["small"], f"small-{lr.name}", filters=False),
        "one": _serve(server, regs["one"], f"one-{lr.name}", filters=False),
    }
    pulls = [("pull.filter", "filter", SMALL), ("pull.nofilter", "nofilter", SMALL), ("pull.small", "small", SMALL),
             ("pull1.filter", "filter", one), ("pull1.one", "one", one)]  # fmt: skip
    for key, where, ref in pulls if rep % 2 == 0 else pulls[::-1]:
        label = f"cold pull {ref} from {where}" + (" (big registry)" if where in ("filter", "nofilter") else " (only that image)")
        step = s.lfsreg_step(f"partial.{key}", label, g, lr)
        out = base / f"{key}.tar"
        s.r.run(step, lr.cmd("pull", served[where].url, ref, "-o", f"docker-archive:{out}"), env=_env(s, lr, server, base / key))
        rmtree(out)
    warm = s.lfsreg_step("partial.warm", f"warm pull {SMALL} from filter (the cold pull's cache)", g, lr)
    out, env = base / "warm.tar", _env(s, lr, server, base / "pull.filter")
    s.r.run(warm, lr.cmd("pull", served["filter"].url, SMALL, "-o", f"docker-archive:{out}"), env=env)
    rmtree(out)
    path = fresh / f"fresh-{rep}.docker.tar"
    if not path.exists():
        image.scale_archive(path, 1, 1, prefix="bench/fresh", salt=f"fresh-{rep}", payload=a.partial_kib * 1024)
    pushes = [("push.filter", "filter"), ("push.nofilter", "nofilter"), ("push.small", "small")]
    for key, where in pushes if rep % 2 == 0 else pushes[::-1]:
        step = s.lfsreg_step(f"partial.{key}", f"cold push of a new small image into {where}", g, lr)
        s.r.run(step, lr.cmd("push", served[where].url, f"docker-archive:{path}"), env=_env(s, lr, server, base / key))
    pushes1 = [("push1.filter", "filter"), ("push1.one", "one")]  # a new name in the scale/ namespace
    for key, where in pushes1 if rep % 2 == 0 else pushes1[::-1]:
        step = s.lfsreg_step(f"partial.{key}", f"cold push of a new small image as {SCALE_NEW} into {where}", g, lr)
        cmd = lr.cmd("push", served[where].url, f"docker-archive:{path}", "--tag", SCALE_NEW)
        s.r.run(step, cmd, env=_env(s, lr, server, base / key))
    name = one.split(":")[0]
    tags_one = s.lfsreg_step("partial.tags_name", f"tags REPO {name}, cold", g, lr)
    s.r.run(tags_one, lr.cmd("tags", served["filter"].url, name), env=_env(s, lr, server, base / "tags-name"))
    for kind in ("tags", "images"):
        listing = s.lfsreg_step(f"partial.{kind}_warm", f"{kind} of the whole registry, warm", g, lr)
        env = _env(s, lr, server, base / "listing")
        subprocess.run(lr.cmd(kind, served["filter"].url), env=env, capture_output=True, check=False)  # warms the cache
        s.r.run(listing, lr.cmd(kind, served["filter"].url), env=env, stdout=base / f"{kind}.out")
    if not a.keep:
        for repo in served.values():
            rmtree(repo.path)
            rmtree(repo.lfs_storage)


def _traffic(s: Session, key: str, what: str) -> float | None:
    runs = s.data.get("traffic", {}).get(key)
    return None if not runs else sorted(r[what] for r in runs)[len(runs) // 2]


def _bytes(s: Session, name: str, num: str, den: str) -> Check:
    n, d = _traffic(s, num, "MiB served"), _traffic(s, den, "MiB served")
    if n is None or not d:
        return Check(name, "-", f"<= {BYTES_X:.1f}x", None, "not measured")
    return Check(name, f"{n / d:.2f}x ({n * MIB / 1000:.1f}/{d * MIB / 1000:.1f} kB)", f"<= {BYTES_X:.1f}x", n / d <= BYTES_X)


def checks(s: Session) -> list[Check]:
    out: list[Check] = []
    pairs = [("pull of the small image", "pull.filter", "pull.small"), ("pull of a scale/ image", "pull1.filter", "pull1.one"),
             ("push of a new image", "push.filter", "push.small"),
             ("push of a new image into scale/", "push1.filter", "push1.one")]  # fmt: skip
    for lr in s.lfsregs:
        p = f"[{lr.name}] partial:"

        def k(name: str, rev: str = lr.name) -> str:
            return f"partial.{name}@{rev}"

        for what, big, small in pairs:
            out.append(_bytes(s, f"{p} {what}, big/one-image registry, bytes", k(big), k(small)))
            out.append(ratio(s, f"{p} {what}, big/one-image registry, time", k(big), k(small), TIME_X))
        for what, big, small in (("pull", "pull.nofilter", "pull.small"), ("push", "push.nofilter", "push.small")):
            out.append(_bytes(s, f"{p} {what} without filters, big/one-image registry, bytes (before)", k(big), k(small)))
            out[-1].target, out[-1].met = "info", None
            out.append(ratio(s, f"{p} {what} without filters, big/one-image registry, time (before)", k(big), k(small)))
        reqs = _traffic(s, k("warm"), "requests")
        if reqs is not None:
            want = f"{REF_QUERY} (one ref query)"
            out.append(Check(f"{p} warm pull of an unchanged tag: HTTP requests", f"{reqs:.0f}", want, reqs <= REF_QUERY))
        out.append(at_most(s, f"{p} tags REPO NAME, cold", k("tags_name"), TAGS_NAME_S))
        out.append(at_most(s, f"{p} tags of the whole registry, warm", k("tags_warm"), LIST_S))
        out.append(at_most(s, f"{p} images of the whole registry, warm", k("images_warm"), LIST_S))
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("partial")
    if not info:
        return []
    a = s.a
    lines = [f"partial: {a.partial_images} images x {a.partial_tags} tags + {SMALL} ({a.partial_kib} KiB); scale/ image {info['one']}"]
    lines += [f"partial: registries of {rev}: {fmt}" for rev, fmt in info.get("format", {}).items()]
    lines += https.traffic_table(s)
    return lines
