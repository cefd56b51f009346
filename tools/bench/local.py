"""local: lfsreg vs git + git-lfs, the registry / remote a directory on the same disk.

* floor: one ``sha256sum`` pass over the docker-archive (and, for information, Python's hashlib).
* git+lfs: push = ``tar -x`` + ``git lfs track '*.tar'`` + ``git add`` + ``git commit`` + ``git push``
  to a fresh bare repo; pull = ``GIT_LFS_SKIP_SMUDGE=1 git clone`` + ``git lfs pull``.
* lfsreg, per compression (``--compression``: none and zstd) and revision, on a fresh registry: ``init``,
  ``push``, ``pull -o docker-archive:`` (verified, untimed) [, ``pull -o oci:``], repeat push.
* targets: push and pull with ``none`` <= 0.5x git+lfs, with zstd <= 1.0x; repeat push <= 2 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from tools.bench.report import Check, at_most, passed, ratio
from tools.bench.runner import MIB, rmtree, tree_bytes
from tools.bench.session import Session

TARGETS = {"none": 0.5, "zstd": 1.0}
REPEAT_PUSH_S = 2.0
HASHLIB_PASS = "import hashlib,sys\nh=hashlib.sha256()\nwith open(sys.argv[1],'rb') as f:\n    while d:=f.read(1<<20): h.update(d)\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--compression", action="append", choices=["none", "zstd", "gzip"],
                    help="lfsreg's compression, repeatable (default: none and zstd; the engine: lfsreg's default)")  # fmt: skip
    ap.add_argument("--with-oci", action="store_true", help="local: also time pull -o oci:DIR")


def git_lfs(s: Session, key: str, group: str, remote: str, env: dict[str, str], base: Path) -> bool:
    """One push and pull of the image with stock git + git-lfs through ``remote``; False if it failed."""
    img, _ = s.image()
    push = s.r.step(f"{key}.push", "git+lfs push (untar+track+add+commit+push)", group, nbytes=s.image_bytes)
    cmds = {
        "tar -x (the docker-archive)": ["tar", "-xf", str(img), "-C", "."],
        "git lfs track '*.tar'": ["git", "lfs", "track", "*.tar"],
        "git add -A": ["git", "add", "-A"],
        "git commit": ["git", "commit", "-q", "-m", f"image {s.a.ref}"],
        "git push": ["git", "push", "-q", "origin", "HEAD:refs/heads/main"],
    }
    subs = {label: s.r.step(f"{key}.push.{cmd[1]}", label, group, indent=True) for label, cmd in cmds.items()}
    pull = s.r.step(f"{key}.pull", "git+lfs pull (clone+lfs pull)", group, nbytes=s.image_bytes)
    clone_s = s.r.step(f"{key}.pull.clone", "GIT_LFS_SKIP_SMUDGE=1 git clone", group, indent=True)
    lfs_pull = s.r.step(f"{key}.pull.lfs", "git lfs pull", group, indent=True)
    rmtree(base)
    src, clone = base / "src", base / "clone"
    src.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=src, env=env, check=True)
    subprocess.run(["git", "remote", "add", "origin", remote], cwd=src, env=env, check=True)
    runs = []
    for k, cmd in cmds.items():
        runs.append(s.r.run(subs[k], cmd, cwd=src, env=env))
        if not runs[-1].ok:
            break
    s.r.compose(push, runs, len(cmds))
    if not push.ok:
        pull.skipped = "push failed"
        return False
    runs = [s.r.run(clone_s, ["git", "clone", "-q", remote, str(clone)], cwd=base, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})]
    if runs[0].ok:
        runs.append(s.r.run(lfs_pull, ["git", "lfs", "pull"], cwd=clone, env=env))
    s.r.compose(pull, runs, 2)
    for p in src.glob("*.tar"):  # the working tree holds the real layers, not pointers
        q = clone / p.name
        if pull.ok and (not q.is_file() or q.stat().st_size != p.stat().st_size):
            s.r.fail(pull, f"git lfs pull: {q} missing or wrong size")
            break
    return pull.ok


def _lfsreg(s: Session, comp: str, rep: int) -> None:
    img, _ = s.image()
    for lr in s.in_turn(rep):
        g, nb = f"lfsreg {comp}", s.image_bytes
        init = s.lfsreg_step(f"local.{comp}.init", "lfsreg init", g, lr, indent=True)
        push = s.lfsreg_step(f"local.{comp}.push", f"lfsreg push --compression {comp}", g, lr, nbytes=nb)
        pull = s.lfsreg_step(f"local.{comp}.pull", "lfsreg pull -o docker-archive:FILE", g, lr, nbytes=nb)
        oci = s.lfsreg_step(f"local.{comp}.pulloci", "lfsreg pull -o oci:DIR", g, lr, nbytes=nb) if s.a.with_oci else None
        repeat = s.lfsreg_step(f"local.{comp}.repeat", "lfsreg repeat push (same image)", g, lr)
        verify = s.lfsreg_step(f"local.{comp}.verify", "verify the pulled archive (untimed)", g, lr, lfsreg=False, indent=True)
        base = s.run_dir / f"lfsreg-{comp}-{lr.name}"
        rmtree(base)
        base.mkdir(parents=True)
        repo, out, env = base / "registry.git", base / "pulled.docker.tar", lr.env(s.env)
        s.r.run(init, lr.cmd("init", str(repo)), cwd=base, env=env)
        push_cmd = lr.cmd("push", str(repo), f"docker-archive:{img}", "--compression", comp)
        if not s.r.run(push, push_cmd, cwd=base, env=env).ok:
            continue
        if s.r.run(pull, lr.cmd("pull", str(repo), s.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=env).ok:
            s.verify(verify, out)
        if oci is not None:
            s.r.run(oci, lr.cmd("pull", str(repo), s.a.ref, "-o", f"oci:{base / 'pulled.oci'}"), cwd=base, env=env)
        s.r.run(repeat, push_cmd, cwd=base, env=env)
        s.data.setdefault("local", {})[f"lfsreg {comp} [{lr.name}] bytes stored"] = tree_bytes(repo / "lfs" / "objects")
        if not s.a.keep:
            rmtree(base)


def comps(s: Session) -> list[str]:
    return list(dict.fromkeys(s.a.compression or ["none", "zstd"]))


def run(s: Session) -> None:
    img, _ = s.image()
    floor = s.r.step("floor", "sha256sum of the docker-archive (floor)", "floor", nbytes=s.image_bytes)
    pyhash = s.r.step("floor.py", "python hashlib.sha256 pass (info)", "floor", nbytes=s.image_bytes, indent=True)
    for rep in range(s.a.reps):
        s.r.run(floor, ["sha256sum", str(img)], env=s.env)
        s.r.run(pyhash, [sys.executable, "-c", HASHLIB_PASS, str(img)], env=s.env)
        base = s.run_dir / "gitlfs"
        remote = base / "remote.git"
        rmtree(base)
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], env=s.env, check=True)
        if git_lfs(s, "local.git", "git+lfs", str(remote), s.env, base / "work"):
            s.data.setdefault("local", {})["git+lfs bytes stored"] = tree_bytes(remote / "lfs" / "objects")
        if not s.a.keep:
            rmtree(base)
        for comp in comps(s):
            _lfsreg(s, comp, rep)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        for comp in comps(s):
            k, t = f"local.{comp}", TARGETS.get(comp)
            out.append(ratio(s, f"[{lr.name}] lfsreg push ({comp}) / git+lfs push", f"{k}.push@{lr.name}", "local.git.push", t))
            out.append(ratio(s, f"[{lr.name}] lfsreg pull ({comp}) / git+lfs pull", f"{k}.pull@{lr.name}", "local.git.pull", t))
            out.append(at_most(s, f"[{lr.name}] repeat push ({comp})", f"{k}.repeat@{lr.name}", REPEAT_PUSH_S))
            out.append(ratio(s, f"[{lr.name}] lfsreg push ({comp}) / floor", f"{k}.push@{lr.name}", "floor"))
            out.append(passed(s, f"[{lr.name}] pulled archive == pushed ({comp})", f"{k}.verify@{lr.name}"))  # type: ignore[arg-type]
    out.append(ratio(s, "git+lfs push / floor", "local.git.push", "floor"))
    return [c for c in out if c is not None]


def report(s: Session) -> list[str]:
    stored = s.data.get("local", {})
    if not stored:
        return []
    ref = stored.get("git+lfs bytes stored", (0, 0))[0]
    lines = ["bytes stored (LFS objects, apparent size)"]
    for name, (nbytes, files) in stored.items():
        vs = f", {nbytes / ref:.2f}x git-lfs" if ref else ""
        lines.append(f"  {name:42s} {nbytes / MIB:10.1f} MiB in {files:3d} files{vs}, {nbytes / max(s.image_bytes, 1):.2f}x the archive")
    return [*lines, ""]
