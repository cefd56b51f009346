"""https: lfsreg vs git + git-lfs against the test suite's servers over HTTP, in one run.

The servers are ``tests/peers``' (``start_giftless`` + ``start_git_http``): stock ``git
http-backend`` behind nginx with HTTP Basic auth, giftless proxied as the LFS server on the
same base URL, plain HTTP on the loopback. Every job gets a fresh empty repository.

* git+lfs: push = untar + track + add + commit + ``git push`` (credentials from a
  ``credential.helper store``); pull = ``GIT_LFS_SKIP_SMUDGE=1 git clone`` + ``git lfs pull``.
* lfsreg, per compression (none and zstd) and revision: push (fresh ``LFSREG_CACHE``), pull
  with a cold cache and again warm, repeat push with the push's cache and with an empty one.
* per step, the HTTP requests nginx logged (object PUT/GET, bytes served).
* targets: push and cold pull <= 1.0x git+lfs; the warm pull downloads and the repeat pushes
  upload no object.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.bench import local
from tools.bench.report import Check, passed, ratio
from tools.bench.revs import PROJECT_ROOT, Lfsreg
from tools.bench.runner import MIB, Step, rmtree, tool_version, tree_bytes
from tools.bench.session import Session

TARGET_VS_GIT = 1.0
SETTLE_S = 0.25  # nginx logs a request when its connection closes
_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3}) (?P<sent>\d+|-)')
COUNTS = ("requests", "batch", "PUT", "GET", "MiB served", "errors")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    pass


def peers() -> Any:
    """``tests/peers`` (a pytest plugin: importing it needs pytest and tests/ on the path)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    import peers as mod

    return mod


def enter(stack: contextlib.ExitStack, what: str, server: contextlib.AbstractContextManager[Any]) -> Any:
    """Start a peer for as long as ``stack`` lives.

    Raises:
        RuntimeError: It cannot be had (a missing tool makes ``tests/peers`` call ``pytest.fail``,
            a BaseException).

    """
    try:
        return stack.enter_context(server)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise RuntimeError(f"cannot start {what}: {type(e).__name__}: {e}") from None


def start_servers(s: Session) -> Any:
    """giftless + nginx/git http-backend for the rest of the run (started once); counts each command's requests."""
    if "git_http" in s.peers:
        return s.peers["git_http"]
    p = peers()
    sdir = s.work / "servers" / s.r.logdir.name
    gl = enter(s.stack, "giftless", p.start_giftless(sdir / "giftless"))
    server = enter(s.stack, "nginx + git http-backend", p.start_git_http(sdir / "git-http", lfs=gl))
    if not s.a.keep:
        s.stack.callback(rmtree, sdir)
    venv = p.peers_dir() / "venv-giftless"
    s.meta["versions"].update(
        nginx=tool_version([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        giftless=tool_version([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('giftless'))"]),
    )
    s.meta["servers"] = {"git+LFS": server.url, "giftless": gl.url, "files": str(sdir)}
    traffic = s.data.setdefault("traffic", {})

    @contextlib.contextmanager
    def watch(step: Step) -> Iterator[None]:
        start = server.access_log.stat().st_size
        yield
        time.sleep(SETTLE_S)
        counts: dict[str, float] = dict.fromkeys(COUNTS, 0.0)
        with open(server.access_log, "rb") as f:
            f.seek(start)
            for m in _LOG.finditer(f.read().decode(errors="replace")):
                counts["requests"] += 1
                counts["batch"] += "/objects/batch" in m["path"]
                if "/info/lfs/objects/storage/" in m["path"] and m["method"] in ("PUT", "GET") and "verify" not in m["path"]:
                    counts[m["method"]] += 1
                counts["MiB served"] += int(m["sent"]) / MIB if m["sent"] != "-" else 0
                counts["errors"] += int(m["status"]) >= 400 and m["status"] != "401"  # 401: the normal challenge
        traffic.setdefault(step.key, []).append(counts)

    s.r.around = watch
    s.peers["git_http"] = server
    return server


def _lfsreg_env(s: Session, lr: Lfsreg, server: Any, cache: Path) -> dict[str, str]:
    return lr.env({**s.env, "LFSREG_USERNAME": server.user, "LFSREG_PASSWORD": server.password, "LFSREG_CACHE": str(cache)})


def _lfsreg(s: Session, server: Any, comp: str, lr: Lfsreg, rep: int) -> None:
    img, _ = s.image()
    g, nb, k = f"lfsreg {comp}/http", s.image_bytes, f"https.{comp}"
    push = s.lfsreg_step(f"{k}.push", f"lfsreg push --compression {comp}", g, lr, nbytes=nb)
    cold = s.lfsreg_step(f"{k}.pull", "lfsreg pull, cold cache", g, lr, nbytes=nb)
    warm = s.lfsreg_step(f"{k}.warm", "lfsreg pull again, warm cache", g, lr, nbytes=nb)
    repeat = s.lfsreg_step(f"{k}.repeat", "lfsreg repeat push, the push's cache", g, lr)
    repeat_cold = s.lfsreg_step(f"{k}.repeat_cold", "lfsreg repeat push, empty cache", g, lr)
    verify = s.lfsreg_step(f"{k}.verify", "verify the pulled archives (untimed)", g, lr, lfsreg=False, indent=True)
    base = s.run_dir / f"https-{comp}-{lr.name}"
    rmtree(base)
    base.mkdir(parents=True)
    repo = server.create_repo(f"bench/lfsreg-{comp}-{lr.name}-{rep + 1}")
    push_cmd = lr.cmd("push", repo.url, f"docker-archive:{img}", "--compression", comp)
    if s.r.run(push, push_cmd, cwd=base, env=_lfsreg_env(s, lr, server, base / "cache-push")).ok:
        out = base / "pulled.docker.tar"
        for step in (cold, warm):
            pull_cmd = lr.cmd("pull", repo.url, s.a.ref, "-o", f"docker-archive:{out}")
            if s.r.run(step, pull_cmd, cwd=base, env=_lfsreg_env(s, lr, server, base / "cache-pull")).ok:
                s.verify(verify, out)
            rmtree(out)
        s.r.run(repeat, push_cmd, cwd=base, env=_lfsreg_env(s, lr, server, base / "cache-push"))
        s.r.run(repeat_cold, push_cmd, cwd=base, env=_lfsreg_env(s, lr, server, base / "cache-fresh"))
    s.data.setdefault("uploaded", {})[f"lfsreg {comp} [{lr.name}]"] = tree_bytes(repo.lfs_storage)
    if not s.a.keep:
        rmtree(base)
        rmtree(repo.path)
        rmtree(repo.lfs_storage)


def run(s: Session) -> None:
    server = start_servers(s)
    store = s.run_dir / "git-credentials"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(server.credential_line() + "\n")
    env = s.git_env("https", ("credential.helper", f"store --file {store}"))
    for rep in range(s.a.reps):  # interleaved: a change of machine load hits every job alike
        repo = server.create_repo(f"bench/gitlfs-{rep + 1}")
        local.git_lfs(s, "https.git", "git+lfs/http", repo.url, env, s.run_dir / "https-git")
        s.data.setdefault("uploaded", {})["git+lfs"] = tree_bytes(repo.lfs_storage)
        if not s.a.keep:
            rmtree(repo.path)
            rmtree(repo.lfs_storage)
        for comp in local.comps(s):
            for lr in s.in_turn(rep):
                _lfsreg(s, server, comp, lr, rep)


def checks(s: Session) -> list[Check]:
    out: list[Check | None] = []
    last = {k: v[-1] for k, v in s.data.get("traffic", {}).items()}
    for lr in s.lfsregs:
        for comp in local.comps(s):
            k = f"https.{comp}"
            out.append(ratio(s, f"[{lr.name}] lfsreg push ({comp}) / git+lfs push", f"{k}.push@{lr.name}", "https.git.push", TARGET_VS_GIT))
            out.append(
                ratio(s, f"[{lr.name}] lfsreg cold pull ({comp}) / git+lfs pull", f"{k}.pull@{lr.name}", "https.git.pull", TARGET_VS_GIT)
            )
            for step, verb, what in (("warm", "GET", "warm pull downloads"), ("repeat", "PUT", "repeat push uploads"),
                                     ("repeat_cold", "PUT", "repeat push, empty cache, uploads")):  # fmt: skip
                t = last.get(f"{k}.{step}@{lr.name}")
                if t is not None and s.r.steps[f"{k}.{step}@{lr.name}"].ok:
                    out.append(Check(f"[{lr.name}] {what} no object ({comp})", f"{t[verb]} object {verb}", f"0 {verb}", t[verb] == 0))
            out.append(passed(s, f"[{lr.name}] pulled archives == pushed ({comp})", f"{k}.verify@{lr.name}"))
    return [c for c in out if c is not None]


def traffic_table(s: Session) -> list[str]:
    last = {k: v[-1] for k, v in s.data.get("traffic", {}).items()}
    if not last:
        return []
    lines = ["HTTP requests per step (nginx access log, last repetition; errors: statuses >= 400 but 401)"]
    lines.append(f"  {'step':60s}" + "".join(f" {c:>10s}" for c in COUNTS))
    for key, t in last.items():
        if not t["requests"]:
            continue
        st = s.r.steps[key]
        lines.append(f"  {(st.group + ': ' + st.label)[:60]:60s}" + "".join(f" {t[c]:10.0f}" for c in COUNTS))
    return [*lines, ""]


def report(s: Session) -> list[str]:
    lines = [f"servers: {s.meta['servers']} (plain HTTP on the loopback)"] if "servers" in s.meta else []
    lines += traffic_table(s)
    up = s.data.get("uploaded", {})
    if up:
        ref = up.get("git+lfs", (0, 0))[0]
        lines.append("bytes uploaded (LFS objects in giftless)")
        lines += [
            f"  {n:32s} {b / MIB:10.1f} MiB in {f:3d} objects" + (f", {b / ref:.2f}x git-lfs" if ref else "") for n, (b, f) in up.items()
        ]
        lines.append("")
    return lines
