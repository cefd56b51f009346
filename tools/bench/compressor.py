"""zstd: is lfsreg as fast as the compressor? (issue 13 item 3) Push and pull beside the tools they contain.

Per repetition, in turn on the same warm docker-archive (the big image, ``--size``):

* ``zstd -L -T0`` compressing the archive (L: lfsreg's default level), then ``lfsreg push`` (zstd);
* ``zstd -d`` of the layers that push stored (its LFS objects, into one file), then ``lfsreg pull``
  (``-o docker-archive:``: plain layers), then ``lfsreg pull -o oci:`` (layers as stored, their
  diff_ids checked by decoding them on the side; a ratio for information);
* one Python sha256 pass over the archive, then ``lfsreg push --compression none`` and its pull;
* the git + git-lfs do-it-yourself push and pull (as in ``local``).

Targets, on the BEST of ``--reps`` runs of each side (the issue asks for best of two: use
``--reps 2``): default push <= 1.15x ``zstd -T0`` and <= 0.7x git + git-lfs; default pull <= 1.3x
``zstd -d``; uncompressed push <= 1.1x and pull <= 1.3x the sha256 pass; peak RSS < 200 MB (as
for every lfsreg step). The load average at each repetition's start is in the report: on a
shared machine the ratios move with it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tools.bench import local
from tools.bench.report import Check
from tools.bench.revs import Lfsreg
from tools.bench.runner import Step, rmtree
from tools.bench.session import Session

LEVEL = 3  # lfsreg.compression.DEFAULT_LEVELS["zstd"] (the bench never imports lfsreg)
TARGETS = {  # (lfsreg step, yardstick step, at most)
    "push (zstd) / zstd -T0": ("zstd.push.zstd", "zstd.cli", 1.15),  # lfsreg steps: KEY@revision
    "push (zstd) / git+lfs push": ("zstd.push.zstd", "zstd.git.push", 0.7),
    "pull (zstd) / zstd -d of the stored layers": ("zstd.pull.zstd", "zstd.cli.d", 1.3),
    "push (none) / python sha256 pass": ("zstd.push.none", "zstd.sha", 1.1),
    "pull (none) / python sha256 pass": ("zstd.pull.none", "zstd.sha", 1.3),
    "pull -o oci: (zstd) / zstd -d of the stored layers": ("zstd.pull-oci.zstd", "zstd.cli.d", None),
}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """No options of its own: ``--size``, ``--layers``, ``--image`` and ``--reps`` apply."""


def best(step: Step | None) -> float | None:
    """The fastest successful run (None if any run failed)."""
    if step is None or not step.ok:
        return None
    vals = [r.seconds for r in step.runs if r.seconds is not None]
    return min(vals) if vals else None


def _objects(repo: Path) -> list[str]:
    return sorted(str(p) for p in (repo / "lfs" / "objects").rglob("*") if p.is_file())


def _lfsreg(s: Session, lr: Lfsreg, comp: str, base: Path, yardstick: tuple[Step, list[str]] | None) -> None:
    """Push and pull with ``comp`` into a fresh registry; ``yardstick`` runs between them (``{objects}``: the stored layers)."""
    img, _ = s.image()
    group, nb = f"lfsreg {comp}", s.image_bytes
    init = s.lfsreg_step(f"zstd.init.{comp}", "lfsreg init", group, lr, indent=True)
    push = s.lfsreg_step(f"zstd.push.{comp}", f"lfsreg push --compression {comp}", group, lr, nbytes=nb)
    pull = s.lfsreg_step(f"zstd.pull.{comp}", "lfsreg pull -o docker-archive:FILE", group, lr, nbytes=nb)
    verify = s.lfsreg_step(f"zstd.verify.{comp}", "verify the pulled archive (untimed)", group, lr, lfsreg=False, indent=True)
    pull_oci = s.lfsreg_step(f"zstd.pull-oci.{comp}", "lfsreg pull -o oci:DIR", group, lr, nbytes=nb) if comp == "zstd" else None
    repo, out, env = base / f"registry-{comp}-{lr.name}.git", base / f"pulled-{comp}.tar", lr.env(s.env)
    s.r.run(init, lr.cmd("init", str(repo)), cwd=base, env=env)
    if not s.r.run(push, lr.cmd("push", str(repo), f"docker-archive:{img}", "--compression", comp), cwd=base, env=env).ok:
        return
    if yardstick is not None:
        step, argv = yardstick
        argv = [a for arg in argv for a in (_objects(repo) if arg == "{objects}" else [arg])]
        s.r.run(step, argv, cwd=base, env=s.env, stdout=base / "yardstick.out")
        (base / "yardstick.out").unlink(missing_ok=True)
    if s.r.run(pull, lr.cmd("pull", str(repo), s.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=env).ok:
        s.verify(verify, out)
    rmtree(out)
    if pull_oci is not None:
        s.r.run(pull_oci, lr.cmd("pull", str(repo), s.a.ref, "-o", f"oci:{base / 'pulled-oci'}"), cwd=base, env=env)
        rmtree(base / "pulled-oci")
    rmtree(repo)


def run(s: Session) -> None:
    img, _ = s.image()
    nb = s.image_bytes
    cli = s.r.step("zstd.cli", f"zstd -{LEVEL} -T0 of the docker-archive", "yardsticks", nbytes=nb)
    cli_d = s.r.step("zstd.cli.d", "zstd -d of the layers lfsreg stored (zstd)", "yardsticks", nbytes=nb)
    sha = s.r.step("zstd.sha", "python hashlib.sha256 pass over the docker-archive", "yardsticks", nbytes=nb)
    base = s.run_dir / "zstd"
    for rep in range(s.a.reps):
        s.data.setdefault("zstd", {}).setdefault("load average at each repetition", []).append(os.getloadavg())
        rmtree(base)
        base.mkdir(parents=True)
        s.r.run(cli, ["zstd", f"-{LEVEL}", "-T0", "-q", "-c", str(img)], cwd=base, env=s.env, stdout=base / "cli.zst")
        (base / "cli.zst").unlink(missing_ok=True)
        for lr in s.in_turn(rep):  # the working tree's stored layers are the ones zstd -d reads
            _lfsreg(s, lr, "zstd", base, (cli_d, ["zstd", "-d", "-q", "-c", "{objects}"]) if lr.name == "work" else None)
        s.r.run(sha, [sys.executable, "-c", local.HASHLIB_PASS, str(img)], env=s.env)
        for lr in s.in_turn(rep):
            _lfsreg(s, lr, "none", base, None)
        remote = base / "gitlfs" / "remote.git"
        remote.parent.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], env=s.env, check=True)
        local.git_lfs(s, "zstd.git", "git+lfs", str(remote), s.env, base / "gitlfs" / "work")
        if not s.a.keep:
            rmtree(base)


def checks(s: Session) -> list[Check]:
    """The targets, for the working tree; each other revision's same ratios for information."""
    out = []
    for lr in s.lfsregs:
        for name, (num, den, target) in TARGETS.items():
            out.append(_ratio(s, f"[{lr.name}] best of {s.a.reps}: {name}", f"{num}@{lr.name}", den, target if lr.name == "work" else None))
    return out


def _ratio(s: Session, name: str, num: str, den: str, target: float | None) -> Check:
    n, d = best(s.r.steps.get(num)), best(s.r.steps.get(den))
    tgt = f"<= {target:.2f}x" if target else "info"
    if n is None or d is None or d <= 0:
        return Check(name, "-", tgt, None, "not measured or failed")
    return Check(name, f"{n / d:.2f}x ({n:.2f}/{d:.2f} s)", tgt, n / d <= target if target else None)


def report(s: Session) -> list[str]:
    loads = s.data.get("zstd", {}).get("load average at each repetition", [])
    if not loads:
        return []
    runs = ", ".join(f"{la[0]:.2f}" for la in loads)
    return [f"zstd: load average (1 min) at the start of each repetition: {runs}; every run of each step is in the JSON", ""]
