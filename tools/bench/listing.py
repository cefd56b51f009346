"""listing: ``tags`` and ``images`` of a big registry, cold and warm, local and over HTTP (issue 13, item 2).

The registry is the ``partial`` scenario's (``--partial-images`` x ``--partial-tags`` small
images plus ``bench/small:1``, built once in the work directory), listed in place (a local
path) and served by the suite's git http-backend + giftless with ``uploadpack.allowFilter``.
Every step is a fresh ``lfsreg`` process; "cold" is an empty ``LFSREG_CACHE``, "warm" the cache
the step before it left (the listing memo, lfsreg/ops/listing.py, and a remote's mirror).

* ``tags REPO NAME`` over HTTP, cold (the name sits in the big ``repositories/scale`` directory);
* ``tags`` and ``images`` of the whole registry, cold then warm, local and over HTTP;
* the same warm after a push of one new image (the memo's other names still hold).

Targets (issue 13): the whole-registry listings under 1 s warm; ``tags REPO NAME`` under 0.3 s
cold; every step under 200 MB peak RSS (the report's generic check).
"""

from __future__ import annotations

import argparse
import subprocess

from tools.bench import https, image, partial
from tools.bench.report import Check, at_most
from tools.bench.runner import rmtree
from tools.bench.session import Session

LIST_S, TAGS_NAME_S = partial.LIST_S, partial.TAGS_NAME_S


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Nothing of its own: the registry is sized by ``--partial-images`` and ``--partial-tags``."""


def run(s: Session) -> None:
    server = https.start_servers(s)
    a = s.a
    for lr in s.lfsregs:
        regs = partial._build(s, lr)
        name = s.data["partial"]["one"].split(":")[0]
        g = f"listing {a.partial_images}x{a.partial_tags}"
        base = s.run_dir / f"listing-{lr.name}"
        for rep in range(a.reps):
            rmtree(base)
            base.mkdir(parents=True)
            served = partial._serve(server, regs["big"], f"listing-{lr.name}", filters=True)
            step = s.lfsreg_step("listing.tags_name", f"tags REPO {name} over HTTP, cold", g, lr)
            s.r.run(step, lr.cmd("tags", served.url, name), env=partial._env(s, lr, server, base / "tags-name"))
            for where, repo in (("local", str(regs["big"])), ("http", served.url)):
                for kind in ("tags", "images"):
                    cache = base / f"{where}-{kind}"
                    env = partial._env(s, lr, server, cache)
                    for when in ("cold", "warm"):
                        step = s.lfsreg_step(f"listing.{where}_{kind}_{when}", f"{kind} of the whole registry, {where}, {when}", g, lr)
                        s.r.run(step, lr.cmd(kind, repo), env=env, stdout=base / f"{where}-{kind}-{when}.out")
            # one new image pushed by someone else: the HTTP caches above are one commit behind
            fresh = s.work / "partial" / f"fresh-{a.partial_kib}k" / f"listing-{rep}.docker.tar"
            if not fresh.exists():
                fresh.parent.mkdir(parents=True, exist_ok=True)
                image.scale_archive(fresh, 1, 1, prefix="scale/zfresh", salt=f"listing-{rep}")
            push_env = partial._env(s, lr, server, base / "pusher")
            subprocess.run(lr.cmd("push", served.url, f"docker-archive:{fresh}"), env=push_env, capture_output=True, check=True)
            for kind in ("tags", "images"):
                step = s.lfsreg_step(f"listing.http_{kind}_changed", f"{kind} of the whole registry, http, after a push", g, lr)
                s.r.run(step, lr.cmd(kind, served.url), env=partial._env(s, lr, server, base / f"http-{kind}"))
            if not a.keep:
                rmtree(served.path)
                rmtree(served.lfs_storage)
        if not a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    out: list[Check] = []
    for lr in s.lfsregs:
        p = f"[{lr.name}] listing:"

        def k(name: str, rev: str = lr.name) -> str:
            return f"listing.{name}@{rev}"

        out.append(at_most(s, f"{p} tags REPO NAME over HTTP, cold", k("tags_name"), TAGS_NAME_S))
        out.append(_cpu(s, f"{p} tags REPO NAME over HTTP, cold, CPU", k("tags_name")))
        for where in ("local", "http"):
            for kind in ("tags", "images"):
                out.append(at_most(s, f"{p} {kind} of the whole registry, {where}, warm", k(f"{where}_{kind}_warm"), LIST_S))
                out.append(_cpu(s, f"{p} {kind} of the whole registry, {where}, warm, CPU", k(f"{where}_{kind}_warm")))
                out.append(at_most(s, f"{p} {kind} of the whole registry, {where}, cold", k(f"{where}_{kind}_cold"), None))
        for kind in ("tags", "images"):
            out.append(at_most(s, f"{p} {kind} of the whole registry, http, after a push", k(f"http_{kind}_changed"), None))
    return out


def _cpu(s: Session, name: str, key: str) -> Check:
    """The CPU time (user + system) of a step, for reading its wall time on a loaded machine."""
    step = s.r.steps.get(key)
    cpu = step.cpu_seconds if step is not None else None
    return Check(name, "-" if cpu is None else f"{cpu:.3f} s", "info", None)


def report(s: Session) -> list[str]:
    if not any(key.startswith("listing.") for key in s.r.steps):
        return []
    a = s.a
    table = [] if "partial" in s.meta["scenarios"] else https.traffic_table(s)  # partial prints it
    return [f"listing: {a.partial_images} images x {a.partial_tags} tags (the partial scenario's registry)", *table]
