"""engine: push from / load into a Docker Engine API (podman, ``tests/peers``' engine) vs through a file.

* engine A: started once; the image loaded with ``podman load`` (setup, timed for information).
* floor: the engine's own cost of producing the image, ``GET /images/NAME/get`` read to nowhere
  (and lfsreg's form, ``GET /images/get?names=NAME``), with the time of the first body byte.
* push, per revision, alternating: ``lfsreg push REPO docker-archive:FILE`` and ``lfsreg push REPO
  NAME:TAG`` (``DOCKER_HOST`` = engine A), each into a fresh registry; a repeat push of the
  unchanged image from the engine (which must ask for no save stream); both registries equal.
* load, per revision, alternating, each into a fresh empty engine: ``pull -o docker-archive:FILE``
  + ``POST /images/load`` vs ``pull --load`` (the loaded image must be engine A's).
* targets: push NAME:TAG <= 1.1x push FILE; repeat push <= 2 s; pull --load <= pull + load FILE.

Fresh engines live on the tmpfs /dev/shm when it has room (``--engines-dir``): on this machine's
ext4 without a journal inode allocation crawls for a minute after a mass deletion (each engine's
cleanup), so loads on disk vary 3 to 28 s; there ``--settle`` waits (untimed) between them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tools.bench import https
from tools.bench.report import Check, at_most, ratio
from tools.bench.revs import Lfsreg
from tools.bench.runner import MIB, Run, rmtree
from tools.bench.session import Session

TARGET_PUSH_VS_ARCHIVE, TARGET_LOAD_VS_FILE, REPEAT_PUSH_S = 1.1, 1.0, 2.0
# The measured Engine API client: "get SOCK URL" reads the body to nowhere and prints its timing;
# "load SOCK URL FILE" posts FILE as application/x-tar and fails on an error event.
CLIENT = r"""
import http.client, json, os, socket, sys, time
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[2])
op, url, c, t0 = sys.argv[1], sys.argv[3], Conn("localhost", timeout=3600, blocksize=1 << 20), time.perf_counter()
if op == "get":
    c.request("GET", url)
    r, buf, n, first = c.getresponse(), memoryview(bytearray(1 << 20)), 0, None
    while k := r.readinto(buf):
        first, n = first or time.perf_counter() - t0, n + k
    print(json.dumps({"status": r.status, "bytes": n, "first_byte_s": first, "total_s": time.perf_counter() - t0}))
else:
    with open(sys.argv[4], "rb") as f:
        c.request("POST", url, body=f, headers={"Content-Type": "application/x-tar", "Content-Length": str(os.fstat(f.fileno()).st_size)})
        r = c.getresponse()
        body = r.read()
    print(body.decode(errors="replace"))
    bad = r.status >= 400 or any('"error' in line for line in body.decode(errors="replace").splitlines())
sys.exit(1 if r.status >= 400 or (op != "get" and bad) else 0)
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--engines-dir", default="auto", help="engine: where fresh engines live: a directory, or auto (/dev/shm if it has room)"
    )
    ap.add_argument("--settle", type=float, help="engine: untimed wait (s) after an engine's deletion before a load (default: 65 on ext4)")


def _fs_type(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mnt, fs = line.split()[1:3]
        if (str(path) + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best):
            best, kind = mnt, fs
    return kind


class _Engines:
    """Engine A, the fresh engines, and what the scenario learns about them."""

    def __init__(self, s: Session, stack: contextlib.ExitStack) -> None:
        self.s, self.stack, self.peers = s, stack, https.peers()
        self.client = s.r.logdir / "engine_client.py"
        self.client.write_text(CLIENT.lstrip())
        need = s.image_bytes * (s.meta["image"]["layers"] + 3)  # vfs: one root fs copy per layer + the spooled upload
        shm = Path("/dev/shm")
        room = shutil.disk_usage(shm).free if s.a.engines_dir == "auto" and _fs_type(shm) == "tmpfs" else 0
        self.dir = Path(s.a.engines_dir) if s.a.engines_dir != "auto" else shm / "lfsreg-bench" if room > need + (2 << 30) else s.run_dir
        self.settle_s = s.a.settle if s.a.settle is not None else 65.0 if _fs_type(self.dir) == "ext4" else 0.0
        self.last_delete = time.monotonic()
        self.info: dict[str, Any] = s.data.setdefault(
            "engine", {"engines_dir": f"{self.dir} ({_fs_type(self.dir)})", "settle_s": self.settle_s}
        )
        self.a = self.start("A", s.run_dir / "engine-a")

    def start(self, name: str, root: Path) -> Any:
        eng = https.enter(self.stack, f"engine {name}", self.peers.start_engine(root))
        self.stack.callback(self._deleted, root)
        return eng

    def _deleted(self, root: Path) -> None:
        rmtree(root)
        self.last_delete = time.monotonic()

    def fresh(self, stack: contextlib.ExitStack, name: str) -> Any:
        """A new empty engine for one load (deleted when ``stack`` closes); waits ``--settle`` first."""
        outer, self.stack = self.stack, stack
        try:
            eng = self.start(name, self.dir / f"{self.s.r.logdir.name}-{name}")
        finally:
            self.stack = outer
        if self.settle_s:
            os.sync()
            time.sleep(max(0.0, self.last_delete + self.settle_s - time.monotonic()))
        return eng

    def find(self, eng: Any, ref: str) -> tuple[str, dict[str, Any]] | None:
        """(the engine's name for ``ref``, its inspect document), or None."""
        for name in (ref, f"localhost/{ref}", f"docker.io/{ref}", f"docker.io/library/{ref}"):
            status, body = eng.api("GET", f"/images/{quote(name, safe='/:@')}/json")
            if status == 200:
                return name, json.loads(body)
        return None


def _registries_equal(s: Session, lr: Lfsreg, a: Path, b: Path) -> str | None:
    """Why the registries pushed from the file and from the engine differ (None: same tags, same LFS objects)."""
    tags = [subprocess.run(lr.cmd("tags", str(r), "--format", "json"), env=lr.env(s.env), capture_output=True, text=True).stdout
            for r in (a, b)]  # fmt: skip
    objects = [sorted(p.name for p in (r / "lfs" / "objects").rglob("*") if p.is_file()) for r in (a, b)]
    if not tags[0] or tags[0] != tags[1] or objects[0] != objects[1]:
        return f"tags or LFS objects differ: {tags} / {len(objects[0])} vs {len(objects[1])} objects"
    return None


def _push(s: Session, e: _Engines, lr: Lfsreg, rep: int, name: str) -> Path | None:
    img, _ = s.image()
    g, nb, comp = "push", s.image_bytes, ["--compression", s.a.compression[0]] if s.a.compression else []
    base = s.run_dir / f"engine-{lr.name}"
    base.mkdir(parents=True, exist_ok=True)
    env, eng_env = lr.env(s.env), lr.env({**s.env, "DOCKER_HOST": e.a.docker_host})
    jobs = {
        "arc": (s.lfsreg_step("eng.arc.push", "lfsreg push REPO docker-archive:FILE", g, lr, nbytes=nb), [f"docker-archive:{img}"], env),
        "eng": (s.lfsreg_step("eng.eng.push", "lfsreg push REPO NAME:TAG (from engine A)", g, lr, nbytes=nb), [s.a.ref], eng_env),
    }
    repeat = s.lfsreg_step("eng.eng.repeat", "lfsreg repeat push NAME:TAG (unchanged)", g, lr)
    check = s.lfsreg_step("eng.check.push", "registries equal; the repeat asked for no save stream", g, lr, lfsreg=False, indent=True)
    for which in ("arc", "eng") if rep % 2 == 0 else ("eng", "arc"):
        step, src, run_env = jobs[which]
        rmtree(base / f"{which}.git")
        if not s.r.run(step, lr.cmd("push", str(base / f"{which}.git"), *src, *comp), cwd=base, env=run_env).ok:
            return None
    saves = e.a.log.read_text().count("/get")
    if s.r.run(repeat, lr.cmd("push", str(base / "eng.git"), s.a.ref, *comp), cwd=base, env=eng_env).ok:
        time.sleep(0.2)  # let podman write its request log
        asked = e.a.log.read_text().count("/get") - saves
        err = _registries_equal(s, lr, base / "arc.git", base / "eng.git") or (f"{asked} save request(s)" if asked else None)
        s.r.fail(check, err) if err else s.r.passed(check)
    rmtree(base / "arc.git")
    return base / "eng.git"


def _load(s: Session, e: _Engines, lr: Lfsreg, rep: int, repo: Path, a_image: dict[str, Any]) -> None:
    g, nb, base = "load (a fresh empty engine each)", s.image_bytes, repo.parent
    total = s.lfsreg_step("eng.file.total", "pull -o docker-archive:FILE + load FILE", g, lr, lfsreg=False, nbytes=nb)
    pull = s.lfsreg_step("eng.file.pull", "lfsreg pull REPO NAME:TAG -o docker-archive:FILE", g, lr, nbytes=nb, indent=True)
    load = s.lfsreg_step("eng.file.load", "POST /images/load FILE -> empty engine", g, lr, lfsreg=False, nbytes=nb, indent=True)
    direct = s.lfsreg_step("eng.load", "lfsreg pull REPO NAME:TAG --load -> empty engine", g, lr, nbytes=nb)
    check = s.lfsreg_step("eng.check.load", "the loaded image is engine A's (ID, layers)", g, lr, lfsreg=False, indent=True)
    for which in ("file", "direct") if rep % 2 == 0 else ("direct", "file"):
        with contextlib.ExitStack() as stack:
            runs: list[Run] = []
            out = base / "pulled.docker.tar"
            if which == "file":
                runs.append(s.r.run(pull, lr.cmd("pull", str(repo), s.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=lr.env(s.env)))
                if runs[-1].ok:
                    eng = e.fresh(stack, f"{lr.name}-{rep}-file")
                    runs.append(s.r.run(load, [sys.executable, str(e.client), "load", str(eng.socket), "/v1.41/images/load", str(out)]))
                s.r.compose(total, runs, 2)
                rmtree(out)
            else:
                eng = e.fresh(stack, f"{lr.name}-{rep}-direct")
                env = lr.env({**s.env, "DOCKER_HOST": eng.docker_host})
                runs.append(s.r.run(direct, lr.cmd("pull", str(repo), s.a.ref, "--load"), cwd=base, env=env))
            if runs and runs[-1].ok:
                found = e.find(eng, s.a.ref)
                got = found and (found[1].get("Id"), (found[1].get("RootFS") or {}).get("Layers"))
                s.r.passed(check) if got == (a_image["Id"], a_image["RootFS"]["Layers"]) else s.r.fail(check, f"{which}: {got}")


def run(s: Session) -> None:
    img, info = s.image()
    with contextlib.ExitStack() as stack:
        e = _Engines(s, stack)
        setup = s.r.step("eng.a.load", "podman load -i FILE into engine A (setup)", "engine A", nbytes=s.image_bytes)
        if not s.r.run(setup, e.a.podman_argv("load", "-q", "-i", str(img))).ok:
            return
        found = e.find(e.a, s.a.ref)
        if found is None or found[1].get("Id") != info.config_digest:
            s.r.fail(setup, f"engine A holds {found and found[1].get('Id')}, not {info.config_digest}")
            return
        name, a_image = found
        for rep in range(s.a.reps):
            for key, label, url in (
                ("eng.floor", "engine save: GET /images/NAME/get -> nowhere (floor)", f"/v1.41/images/{quote(name, safe='/:@')}/get"),
                ("eng.floor.names", "the same as GET /images/get?names=NAME (lfsreg's)", f"/v1.41/images/get?names={quote(name, safe='')}"),
            ):
                step = s.r.step(key, label, "engine floor", nbytes=s.image_bytes, indent=key != "eng.floor")
                out = s.r.logdir / f"{key}-{rep}.json"
                if s.r.run(step, [sys.executable, str(e.client), "get", str(e.a.socket), url], stdout=out).ok:
                    e.info.setdefault(f"{key} first byte s", []).append(json.loads(out.read_text())["first_byte_s"])
            for lr in s.in_turn(rep):
                repo = _push(s, e, lr, rep, name)
                if repo is not None:
                    _load(s, e, lr, rep, repo, a_image)
                    if not s.a.keep:
                        rmtree(repo.parent)


def checks(s: Session) -> list[Check]:
    out = []
    for lr in s.lfsregs:
        n = lr.name
        out.append(
            ratio(s, f"[{n}] push NAME:TAG / push docker-archive:FILE", f"eng.eng.push@{n}", f"eng.arc.push@{n}", TARGET_PUSH_VS_ARCHIVE)
        )
        out.append(at_most(s, f"[{n}] repeat push NAME:TAG (unchanged image)", f"eng.eng.repeat@{n}", REPEAT_PUSH_S))
        out.append(ratio(s, f"[{n}] pull --load / (pull -o FILE + load FILE)", f"eng.load@{n}", f"eng.file.total@{n}", TARGET_LOAD_VS_FILE))
        out.append(ratio(s, f"[{n}] push NAME:TAG / engine save stream (floor)", f"eng.eng.push@{n}", "eng.floor"))
        out.append(ratio(s, f"[{n}] push docker-archive:FILE / engine save stream", f"eng.arc.push@{n}", "eng.floor"))
        out.append(ratio(s, f"[{n}] pull --load / load FILE alone", f"eng.load@{n}", f"eng.file.load@{n}"))
    out.append(ratio(s, "save stream: get?names=NAME / NAME/get", "eng.floor.names", "eng.floor"))
    return out


def report(s: Session) -> list[str]:
    info = s.data.get("engine")
    if not info:
        return []
    lines = [f"engines: podman system service (Docker Engine API v1.41, vfs); fresh ones under {info['engines_dir']}"]
    lines += [f"  {k}: median {statistics.median(v):.2f}" for k, v in info.items() if k.endswith("first byte s") and v]
    if info["settle_s"]:
        lines.append(f"  before each load: sync + wait until {info['settle_s']:.0f} s after the previous engine's deletion (untimed)")
    return [*lines, f"  the image: {s.image_bytes / MIB:.1f} MiB docker-archive", ""]
