#!/usr/bin/env python3
"""lfsreg and a Docker engine: push from the engine / load into it, vs the same through a file.

Reuses ``tools/bench.py``: the generated image (a docker-archive cached in ``--workdir``), the
measuring wrapper (wall time + peak RSS of each command), the step table, the checks and the
JSON. The engine is Debian's podman serving the Docker Engine API on a unix socket (as in
``tests/engine_peer.py``: ``podman --root R --runroot SHORT --storage-driver vfs system
service --time=0 unix://SOCK``); every engine here has its own storage and socket.

1. engine A  started once, the image loaded into it with ``podman load -i ARCHIVE`` (timed,
             info). Its storage is deleted at the end, unless ``--keep`` (then a later run
             with ``--keep`` finds the image there and skips the load).
2. floor     the engine's own cost of producing the image: ``GET /v1.41/images/NAME/get``
             read to /dev/null (stdlib client over AF_UNIX); plus, for information, the form
             lfsreg itself asks for (``GET /images/get?names=NAME``). The client also reports
             when the first body byte came: podman 4.3 writes the whole tarball to a temporary
             file before it sends any, so no client can overlap with that part.
3. push      per rep, in alternating order, each into a fresh registry (``lfsreg init``,
             untimed): ``lfsreg push REPO docker-archive:ARCHIVE`` and ``lfsreg push REPO
             NAME:TAG`` (``DOCKER_HOST`` = engine A); then a repeat push of the unchanged image
             from the engine (and, for information, from the archive). Untimed checks: both
             registries list the same tags/digests and hold the same LFS objects; the repeat
             push asked the engine for no save stream (podman's request log).
4. load      per rep, in alternating order, each into a FRESH EMPTY engine (new podman
             service, new storage, deleted afterwards): ``lfsreg pull REPO NAME:TAG -o
             docker-archive:FILE`` + ``POST /v1.41/images/load`` of FILE (stdlib client) vs
             ``lfsreg pull REPO NAME:TAG --load``. Untimed check: the loaded image has engine
             A's image ID and layers. Free space is checked before each new engine.
             Where the fresh engines live (``--engines-dir``): by default the tmpfs /dev/shm
             when it has room (an engine takes ~(layers + 3) x the archive: vfs keeps a full
             root fs copy per layer, and podman spools the upload), else the workdir. Why:
             this VM's disk is ext4 without a journal, where inode allocation crawls for a
             minute or more after a mass deletion (``recently_deleted()`` in the kernel's
             ialloc.c), and every engine's cleanup deletes tens of thousands of files, as do
             other jobs on the machine: the same 100 MiB load took 3 to 28 s on disk, 3.0 to
             3.6 s on tmpfs. On disk, ``--settle`` (default 65 s there) adds an untimed
             ``sync`` + wait after each engine deletion (that alone did not make the loads on
             disk steady here: other jobs delete files too).
5. report    step table (median of ``--reps``; "x floor" = time / engine save stream), the
             targets (met / NOT met), per-rep times with the machine's load average, JSON.

Targets (the ~1 GiB image held by the engine):
  * push from the engine <= 1.1x push of the same image from a docker-archive;
  * repeat push of an unchanged image <= 2 s;
  * pull --load into an empty engine <= pull -o docker-archive:FILE + loading FILE into an
    empty engine.
Peak RSS of every lfsreg command < 200 MB (the project-wide target of tools/bench.py).

Examples::

    python tools/bench_engine.py --size-mb 100          # quick
    python tools/bench_engine.py                        # ~1 GiB image, 5 layers, 3 reps
    python tools/bench_engine.py --reps 5 --json engine.json --keep

Needs podman (``apt-get install -y podman``; run as root), plus skopeo + umoci to generate the
image the first time. Python 3.10+, standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

try:
    import bench  # run as a script: tools/ is on sys.path
except ImportError:
    from tools import bench  # imported from the project root

API = "v1.41"
MIB = bench.MIB
GIB = 1024 * MIB
TARGET_PUSH_VS_ARCHIVE = 1.1  # lfsreg push NAME:TAG (engine) vs lfsreg push docker-archive:FILE
TARGET_REPEAT_PUSH_S = bench.TARGET_REPEAT_PUSH_S  # repeat push of an unchanged image from the engine
TARGET_LOAD_VS_FILE = 1.0  # pull --load vs pull -o docker-archive:FILE + load FILE
DEFAULT_SETTLE_S = 65.0  # ext4 without a journal: inode allocation skips inodes deleted in the last 60 s
RUNROOT_MAX = 50  # podman refuses a longer --runroot
ENGINE_START_S = 90.0  # a podman service must answer /_ping within this

# The measured Engine API client (stdlib, run under tools/bench.py's wrapper):
#   get  SOCK URL        read the response body to nowhere; print {"status", "bytes", "first_byte_s", ...}
#   load SOCK URL FILE   POST FILE as application/x-tar; print the engine's messages; fail on an error event
ENGINE_CLIENT = r"""
import http.client, json, os, socket, sys, time
class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=3600, blocksize=1 << 20)
        self.unix_path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s
op, path, url = sys.argv[1:4]
c = Conn(path)
if op == "get":
    t0 = time.perf_counter()
    c.request("GET", url)
    r = c.getresponse()
    headers_s = time.perf_counter() - t0
    if r.status != 200:
        print(f"GET {url}: HTTP {r.status}: {r.read(2000)!r}", file=sys.stderr)
        sys.exit(1)
    buf = memoryview(bytearray(1 << 20))
    n, first_byte_s = 0, None
    while k := r.readinto(buf):
        if first_byte_s is None:
            first_byte_s = time.perf_counter() - t0
        n += k
    total_s = time.perf_counter() - t0
    print(json.dumps({"status": r.status, "bytes": n, "headers_s": headers_s, "first_byte_s": first_byte_s, "total_s": total_s}))
elif op == "load":
    with open(sys.argv[4], "rb") as f:
        size = os.fstat(f.fileno()).st_size
        c.request("POST", url, body=f, headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
        r = c.getresponse()
        body = r.read()
    msgs, bad = [], r.status >= 400
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            msgs.append(line.decode(errors="replace"))
            continue
        if isinstance(ev, dict) and (ev.get("error") or ev.get("errorDetail")):
            bad = True
        msgs.append(json.dumps(ev))
    print(json.dumps({"status": r.status, "bytes": size, "messages": msgs}))
    if bad:
        print(f"POST {url}: HTTP {r.status}: {body[:2000]!r}", file=sys.stderr)
        sys.exit(1)
else:
    sys.exit(f"unknown op {op}")
"""


# =============================================================================================
# a podman service speaking the Docker Engine API
# =============================================================================================


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def api(sock: Path, method: str, path: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """One small Engine API request (untimed work: ping, inspect)."""
    conn = _UnixConn(str(sock), timeout)
    try:
        conn.request(method, f"/{API}{path}")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def fs_type(path: Path) -> str:
    """File system type of the mount holding ``path`` (from /proc/self/mounts; "" if unknown)."""
    p = os.path.realpath(path)
    best, kind = "", ""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, bytes (0 if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def engine_names(ref: str) -> list[str]:
    """Names a Docker/Podman engine may store ``ref`` under (as lfsreg looks them up)."""
    out = [ref, f"localhost/{ref}", f"docker.io/{ref}"]
    if "/" not in ref.split(":", 1)[0]:
        out.append(f"docker.io/library/{ref}")
    return out


@dataclass
class Engine:
    """A running ``podman system service`` with its own storage under ``root``."""

    name: str
    root: Path  # storage (root/root), TMPDIR (root/tmp), socket, log
    runroot: Path
    proc: subprocess.Popen[bytes]
    start_seconds: float = 0.0

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log(self) -> Path:
        return self.root / "podman.log"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def request_count(self, needle: str) -> int:
        """How often ``needle`` appears in the service's request log."""
        try:
            return self.log.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def inspect(self, ref: str) -> tuple[str, dict[str, Any]] | None:
        """(engine's name, inspect document) of ``ref``; None if absent."""
        for name in engine_names(ref):
            st, body = api(self.socket, "GET", f"/images/{quote(name, safe='/:@')}/json")
            if st == 200:
                return name, json.loads(body)
        return None


def podman_argv(podman: str, root: Path, runroot: Path) -> list[str]:
    return [podman, "--root", str(root / "root"), "--runroot", str(runroot), "--storage-driver", "vfs"]


@contextlib.contextmanager
def start_engine(podman: str, name: str, root: Path, runroot: Path | None = None, *, delete: bool = True) -> Iterator[Engine]:
    """Start a podman service on ``root``; on exit stop it, drop its runroot and (``delete``) its storage."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    if runroot is None:
        runroot = Path(tempfile.mkdtemp(prefix="lfsreg-rr-", dir="/tmp"))
    runroot.mkdir(parents=True, exist_ok=True)
    if len(str(runroot)) > RUNROOT_MAX:
        raise RuntimeError(f"runroot {runroot} is longer than {RUNROOT_MAX} characters: podman refuses it")
    sock = root / "docker.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    argv = [*podman_argv(podman, root, runroot), "--log-level", "info", "system", "service", "--time=0", f"unix://{sock}"]
    env = dict(os.environ, TMPDIR=str(root / "tmp"))  # podman spools an uploaded image here: deleted with the storage
    t0 = time.monotonic()
    with open(root / "podman.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    engine = Engine(name, root, runroot, proc)
    try:
        deadline = t0 + ENGINE_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"podman service {name} exited rc={proc.returncode}:\n{bench.tail(engine.log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"podman service {name} did not answer /_ping within {ENGINE_START_S:.0f} s:\n{bench.tail(engine.log)}")
            if sock.exists():
                with contextlib.suppress(OSError):
                    if api(sock, "GET", "/_ping", timeout=10)[0] == 200:
                        break
            time.sleep(0.05)
        engine.start_seconds = time.monotonic() - t0
        yield engine
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the session this function started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(runroot, ignore_errors=True)
        if delete:
            shutil.rmtree(root, ignore_errors=True)


# =============================================================================================
# the benchmark
# =============================================================================================


@dataclass
class RepInfo:
    rep: int
    push_order: list[str] = field(default_factory=list)
    load_order: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    foreign: list[str] = field(default_factory=list)  # busy processes that are not this benchmark's
    seconds: dict[str, float | None] = field(default_factory=dict)


def _foreign_busy(own: set[int], min_cpu_s: float = 0.0) -> dict[int, tuple[str, float]]:
    """pid -> (command, cpu seconds so far) of user processes outside this benchmark's sessions."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        sid = int(fields[3])
        if pid in own or sid in own or not cmd:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if cpu >= min_cpu_s:
            out[pid] = (cmd[:120], cpu)
    return out


class EngineBench(bench.Bench):
    title = "lfsreg engine benchmark: push from / load into a Docker Engine API (podman) vs through a docker-archive file"

    def __init__(self, args: argparse.Namespace, err: Any) -> None:
        super().__init__(args, err)
        self.run_dir = self.work / "run-engine" / self.r.logdir.name
        self.env.pop("DOCKER_HOST", None)
        self.podman = shutil.which(args.podman) or args.podman
        self.engines_dir = self.run_dir / "engines"  # resolved in choose_engines_dir()
        self.engines_fs = ""
        self.settle_s = 0.0
        self.engine_a: Engine | None = None
        self.a_image: dict[str, Any] = {}  # name, Id, layers in engine A
        self.reps: list[RepInfo] = []
        self.correct: dict[str, list[str | None]] = {}  # check name -> per rep: None = ok, else error
        self.stream_bytes: dict[str, list[int]] = {}
        self.stream_first_byte: dict[str, list[float]] = {}  # seconds until the save stream's first body byte
        self.engine_meta: dict[str, Any] = {"fresh_start_s": [], "fresh_delete_s": [], "free_gb": []}
        self.own_sessions: set[int] = {os.getsid(0)}
        # time.monotonic() when an engine's storage was last deleted (for all we know: just before this run)
        self.last_delete: float | None = time.monotonic()

    # ---- helpers ----------------------------------------------------------------------------
    def client(self, *args: str) -> list[str]:
        """The measured stdlib Engine API client (``ENGINE_CLIENT``, written once into the log dir)."""
        path = self.r.logdir / "engine_client.py"
        if not path.exists():
            path.write_text(ENGINE_CLIENT.lstrip())
        return [sys.executable, str(path), *args]

    def note_ok(self, name: str, err: str | None) -> None:
        self.correct.setdefault(name, []).append(err)
        if err:
            self.r.log(f"    CHECK FAILED: {name}: {err}")
            self.r.failures.append(bench.Failure(name, "", None, err, "", ""))

    def disk_ok(self, step: bench.Step, what: str, where: Path | None = None) -> bool:
        where = where or self.work
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free
        if fs_type(where) == "tmpfs":
            free = min(free, mem_available())  # tmpfs pages are RAM
        self.engine_meta["free_gb"].append(round(free / 1e9, 1))
        # an image in podman's vfs storage takes one full copy of the root fs per layer, plus the spooled upload
        need = max(int(self.a.min_free_gb * 1e9), self.engine_need())
        if free < need:
            self.r.note_failure(step, f"only {free / 1e9:.1f} GB free in {where}, {need / 1e9:.1f} GB needed for {what}")
            return False
        return True

    def inspect_file_json(self, path: Path) -> dict[str, Any]:
        try:
            return dict(json.loads(path.read_text().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError):
            return {}

    # ---- engine A ---------------------------------------------------------------------------
    def setup_engine_a(self, stack: contextlib.ExitStack) -> bool:
        a = self.a
        st = self.r.step("a.load", "podman load -i ARCHIVE into engine A (setup, once)", "engine A", nbytes=self.archive_bytes)
        assert self.image is not None and self.image_info is not None
        if a.keep:
            tag = hashlib.sha256(f"{self.image}:{self.archive_bytes}".encode()).hexdigest()[:10]
            root = self.work / "engine-a" / tag
            runroot: Path | None = Path(f"/tmp/lfsreg-rr-k{tag}")
        else:
            root = self.run_dir / "engine-a"
            runroot = None
        if not self.disk_ok(st, "engine A"):
            return False
        try:
            eng = stack.enter_context(start_engine(self.podman, "A", root, runroot, delete=not a.keep))
        except (OSError, RuntimeError) as e:
            self.r.note_failure(st, f"cannot start engine A: {e}")
            return False
        self.engine_a = eng
        self.engine_meta["a"] = {"root": str(root), "socket": str(eng.socket), "start_s": round(eng.start_seconds, 2)}
        self.r.log(f"engine A: {eng.docker_host} (started in {eng.start_seconds:.1f} s), storage {root}")
        found = eng.inspect(a.ref)
        if found is not None and found[1].get("Id") == self.image_info.config_digest:
            self.r.log(f"engine A already holds {found[0]} (--keep): not loading it again")
            st.skipped = "already loaded (--keep)"
        else:
            r = self.r.run(st, [*podman_argv(self.podman, root, eng.runroot), "load", "-q", "-i", str(self.image)], env=dict(os.environ))
            if not r.ok:
                return False
            found = eng.inspect(a.ref)
        if found is None:
            self.r.note_failure(st, f"engine A has no image {a.ref} after podman load (tried {engine_names(a.ref)})")
            return False
        name, doc = found
        self.a_image = {"name": name, "id": doc.get("Id"), "layers": (doc.get("RootFS") or {}).get("Layers") or [], "size": doc.get("Size")}
        if doc.get("Id") != self.image_info.config_digest:
            self.note_ok("engine A image ID == archive config digest", f"{doc.get('Id')} != {self.image_info.config_digest}")
        self.r.log(f"engine A holds {name} = {doc.get('Id')}")
        return True

    # ---- floor ---------------------------------------------------------------------------
    def floor_rep(self) -> None:
        eng = self.engine_a
        assert eng is not None
        name = self.a_image["name"]
        nb = self.archive_bytes
        for key, label, url in (
            ("floor", "engine save: GET /images/NAME/get -> /dev/null (floor)", f"/{API}/images/{quote(name, safe='/:@')}/get"),
            ("floor.names", "same, GET /images/get?names=NAME (lfsreg's call)", f"/{API}/images/get?names={quote(name, safe='')}"),
        ):
            st = self.r.step(key, label, "engine floor", nbytes=nb, indent=key != "floor")
            out = self.r.logdir / f"{key}-{len(st.runs) + 1}.out"
            r = self.r.run(st, self.client("get", str(eng.socket), url), env=self.env, stdout_path=out)
            if r.ok:
                res = self.inspect_file_json(out)
                self.stream_bytes.setdefault(key, []).append(int(res.get("bytes", 0)))
                self.stream_first_byte.setdefault(key, []).append(float(res.get("first_byte_s") or 0.0))
                self.r.log(f"    first byte after {res.get('first_byte_s') or 0:.2f} s of {res.get('total_s') or 0:.2f} s")

    # ---- push ------------------------------------------------------------------------------
    def push_rep(self, rep: int, info: RepInfo) -> Path | None:
        """Archive push vs engine push (alternating), repeats, checks; return the engine-pushed registry."""
        eng = self.engine_a
        assert eng is not None and self.image is not None
        g = "push"
        nb = self.archive_bytes
        comp = ["--compression", self.a.compression] if self.a.compression else []
        s_arc = self.r.step("arc.push", "lfsreg push REPO docker-archive:ARCHIVE", g, nbytes=nb, lfsreg=True)
        s_eng = self.r.step("eng.push", "lfsreg push REPO NAME:TAG (from engine A)", g, nbytes=nb, lfsreg=True)
        s_rep = self.r.step("eng.repeat", "lfsreg repeat push NAME:TAG (unchanged)", g, lfsreg=True)
        s_arep = self.r.step("arc.repeat", "lfsreg repeat push docker-archive:ARCHIVE (info)", g, lfsreg=True, indent=True)
        base = self.run_dir / f"rep{rep}"
        base.mkdir(parents=True, exist_ok=True)
        eng_env = dict(self.env, DOCKER_HOST=eng.docker_host)
        jobs = {
            "archive": (s_arc, base / "arc.git", [f"docker-archive:{self.image}", *comp], self.env),
            "engine": (s_eng, base / "eng.git", [self.a.ref, *comp], eng_env),
        }
        order = ["archive", "engine"] if rep % 2 == 0 else ["engine", "archive"]
        info.push_order = order
        ok: dict[str, bool] = {}
        for which in order:
            st, repo, src, env = jobs[which]
            bench.rmtree(repo)
            if not self.disk_ok(st, f"the {which} push"):
                ok[which] = False
                continue
            p = subprocess.run(self.lfsreg("init", str(repo)), cwd=base, env=self.env, capture_output=True, check=False)
            if p.returncode != 0:
                self.r.log(f"    lfsreg init {repo} failed rc={p.returncode}: {p.stderr[-300:]!r}; letting push create it")
                bench.rmtree(repo)
            ok[which] = self.r.run(st, self.lfsreg("push", str(repo), *src), cwd=base, env=env).ok
            info.seconds[st.key] = st.runs[-1].seconds
        arc_repo, eng_repo = jobs["archive"][1], jobs["engine"][1]
        if ok.get("engine"):
            before = eng.request_count("/images/get") + eng.request_count("/get HTTP")
            r = self.r.run(s_rep, self.lfsreg("push", str(eng_repo), self.a.ref, *comp), cwd=base, env=eng_env)
            info.seconds[s_rep.key] = r.seconds
            if r.ok:
                time.sleep(0.2)  # let podman flush its request log
                after = eng.request_count("/images/get") + eng.request_count("/get HTTP")
                self.note_ok(
                    "repeat push (engine) asked for no save stream", None if after == before else f"{after - before} save request(s)"
                )
        else:
            s_rep.skipped = "engine push failed"
        if ok.get("archive"):
            r = self.r.run(s_arep, self.lfsreg("push", str(arc_repo), f"docker-archive:{self.image}", *comp), cwd=base, env=self.env)
            info.seconds[s_arep.key] = r.seconds
        if ok.get("engine") and ok.get("archive"):
            self.note_ok(
                "registry from engine == from archive (tags, LFS objects)",
                self.compare_registries(arc_repo, eng_repo),
            )
        bench.rmtree(arc_repo)
        return eng_repo if ok.get("engine") else None

    def compare_registries(self, a_repo: Path, b_repo: Path) -> str | None:
        tags = []
        for repo in (a_repo, b_repo):
            p = subprocess.run(
                self.lfsreg("tags", str(repo), "--format", "json"), env=self.env, capture_output=True, text=True, check=False
            )
            if p.returncode != 0:
                return f"lfsreg tags {repo} failed rc={p.returncode}: {p.stderr[-300:]}"
            tags.append(json.loads(p.stdout))
        if tags[0] != tags[1]:
            return f"tags differ: archive {tags[0]} vs engine {tags[1]}"
        objs = [sorted(p.name for p in (r / "lfs" / "objects").rglob("*") if p.is_file()) for r in (a_repo, b_repo)]
        if objs[0] != objs[1]:
            return f"LFS objects differ: {len(objs[0])} vs {len(objs[1])} files"
        return None

    # ---- pull / load ---------------------------------------------------------------------------
    def fresh_engine(self, stack: contextlib.ExitStack, step: bench.Step, name: str) -> Engine | None:
        if not self.disk_ok(step, f"fresh engine {name}", self.engines_dir):
            return None
        stop_t0: list[float] = []

        def stopped() -> None:
            self.last_delete = time.monotonic()
            if stop_t0:
                self.engine_meta["fresh_delete_s"].append(round(self.last_delete - stop_t0[0], 2))

        # ExitStack unwinds last-in first-out: the stop_t0 mark runs before start_engine's exit, stopped() after it
        stack.callback(stopped)
        try:
            eng = stack.enter_context(start_engine(self.podman, name, self.engines_dir / f"{self.r.logdir.name}-{name}"))
        except (OSError, RuntimeError) as e:
            self.r.note_failure(step, f"cannot start fresh engine {name}: {e}")
            return None
        stack.callback(lambda: stop_t0.append(time.monotonic()))
        self.engine_meta["fresh_start_s"].append(round(eng.start_seconds, 2))
        return eng

    def engine_need(self) -> int:
        """Bytes a fresh engine may take: vfs keeps one full root fs copy per layer, plus the spooled upload."""
        n_layers = len(self.image_info.diff_ids) if self.image_info is not None else 5
        return self.archive_bytes * (n_layers + 3)

    def choose_engines_dir(self) -> None:
        """Where fresh engines live (``--engines-dir``; ``auto``: tmpfs /dev/shm if it has room, else the workdir)."""
        a = self.a
        need = self.engine_need()
        why = "--engines-dir"
        if a.engines_dir == "auto":
            shm = Path("/dev/shm")
            room = 0
            if fs_type(shm) == "tmpfs":
                room = min(shutil.disk_usage(shm).free, mem_available())
            if room >= need + 2 * GIB:
                self.engines_dir = shm / "lfsreg-bench-engines"
                why = f"auto: tmpfs has room for {need / 1e9:.1f} GB"
            else:
                why = f"auto: /dev/shm is no tmpfs with {need / 1e9:.1f} GB + 2 GiB to spare"
        elif a.engines_dir != "workdir":
            self.engines_dir = Path(a.engines_dir).resolve()
        else:
            why = "--engines-dir workdir"
        self.engines_fs = fs_type(self.engines_dir)
        self.engine_meta["engines_dir"] = str(self.engines_dir)
        self.engine_meta["engines_fs"] = self.engines_fs
        self.engine_meta["engines_dir_why"] = why
        if a.settle is not None:
            self.settle_s = a.settle
        else:
            self.settle_s = DEFAULT_SETTLE_S if self.engines_fs == "ext4" else 0.0
        self.r.log(f"fresh engines under {self.engines_dir} ({self.engines_fs}, {why}); settle {self.settle_s:.0f} s")

    def settle(self) -> None:
        """Wait (untimed) until ``--settle`` seconds after the last engine storage was deleted.

        On ext4 without a journal (this machine's disk) inode allocation skips inodes deleted in
        the last 60 s (300 s while their inode table block is dirty) and gets very slow after a
        mass deletion such as a vfs storage (tens of thousands of files): the next engine load
        would pay for the previous one's cleanup, and the first load of a run would not.
        """
        if self.last_delete is None or self.settle_s <= 0:
            return
        os.sync()
        wait = self.last_delete + self.settle_s - time.monotonic()
        if wait > 0:
            self.r.log(f"    settling {wait:.0f} s after deleting the previous engine's storage (untimed)")
            time.sleep(wait)
            self.engine_meta["settled_s"] = round(self.engine_meta.get("settled_s", 0.0) + wait, 1)

    def check_loaded(self, eng: Engine, what: str) -> None:
        found = eng.inspect(self.a.ref)
        if found is None:
            self.note_ok(f"{what}: loaded image == engine A's (ID, layers)", f"no {self.a.ref} in the engine after the load")
            return
        _name, doc = found
        layers = (doc.get("RootFS") or {}).get("Layers") or []
        err = None
        if doc.get("Id") != self.a_image["id"]:
            err = f"ID {doc.get('Id')} != engine A's {self.a_image['id']}"
        elif layers != self.a_image["layers"]:
            err = "layers (diff_ids) differ from engine A's"
        self.note_ok(f"{what}: loaded image == engine A's (ID, layers)", err)

    def load_rep(self, rep: int, info: RepInfo, repo: Path) -> None:
        g = "load (fresh empty engine each)"
        nb = self.archive_bytes
        s_tot = self.r.step("file.total", "pull -o docker-archive:FILE + load FILE", g, nbytes=nb, parts=["file.pull", "file.load"])
        s_pull = self.r.step("file.pull", "lfsreg pull REPO NAME:TAG -o docker-archive:FILE", g, nbytes=nb, lfsreg=True, indent=True)
        s_load = self.r.step("file.load", "POST /images/load FILE -> empty engine", g, nbytes=nb, indent=True)
        s_eng = self.r.step("eng.load", "lfsreg pull REPO NAME:TAG --load -> empty engine", g, nbytes=nb, lfsreg=True)
        base = self.run_dir / f"rep{rep}"
        order = ["file", "engine"] if rep % 2 == 0 else ["engine", "file"]
        info.load_order = order
        for which in order:
            if which == "file":
                out = base / "pulled.docker.tar"
                bench.rmtree(out)
                runs: list[bench.Run] = []
                r1 = self.r.run(s_pull, self.lfsreg("pull", str(repo), self.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=self.env)
                runs.append(r1)
                if r1.ok and self.image_info is not None:
                    err = bench.verify_pulled_archive(out, self.a.ref, self.image_info, hash_layers=False)
                    if err:
                        self.note_ok("pulled docker-archive == pushed (config, diff_ids)", err)
                with contextlib.ExitStack() as stack:
                    eng = self.fresh_engine(stack, s_load, f"r{rep}-file") if r1.ok else None
                    if eng is not None:
                        o = self.r.logdir / f"file.load-{rep}.out"
                        self.settle()
                        r2 = self.r.run(
                            s_load, self.client("load", str(eng.socket), f"/{API}/images/load", str(out)), env=self.env, stdout_path=o
                        )
                        runs.append(r2)
                        if r2.ok:
                            self.check_loaded(eng, "load FILE")
                bench.rmtree(out)
                self._compose(s_tot, runs, 2)
                info.seconds["file.pull"] = r1.seconds
                info.seconds["file.load"] = runs[1].seconds if len(runs) > 1 else None
                info.seconds["file.total"] = s_tot.runs[-1].seconds
            else:
                with contextlib.ExitStack() as stack:
                    eng = self.fresh_engine(stack, s_eng, f"r{rep}-load")
                    if eng is None:
                        continue
                    env = dict(self.env, DOCKER_HOST=eng.docker_host)
                    self.settle()
                    r = self.r.run(s_eng, self.lfsreg("pull", str(repo), self.a.ref, "--load"), cwd=base, env=env)
                    info.seconds["eng.load"] = r.seconds
                    if r.ok:
                        self.check_loaded(eng, "pull --load")

    # ---- driver ------------------------------------------------------------------------------
    def collect_meta(self) -> None:
        a = self.a
        self.meta.update(
            date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            host=os.uname().nodename,
            cpus=os.cpu_count(),
            python=sys.version.split()[0],
            reps=a.reps,
            lfsreg_cmd=a.lfsreg,
            workdir=str(self.work),
            logdir=str(self.r.logdir),
            mode="engine",
            versions={
                "podman": bench.tool_version([self.podman, "--version"]),
                "lfsreg": bench.tool_version(self.lfsreg("--version"), self.env, cwd=self.work),
                "skopeo": bench.tool_version(["skopeo", "--version"]),
                "umoci": bench.tool_version(["umoci", "--version"]),
            },
        )

    def run_all(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.use_lfsreg_rev()
        self.collect_meta()
        self.meta["loadavg"] = {"start": os.getloadavg()}
        self.meta["uptime_start"] = bench.tool_version(["uptime"])
        self.setup_git_home()
        try:
            self.generate()
            if self.image is None or self.image_info is None:
                return
            self.choose_engines_dir()
            with open(self.image, "rb") as f:  # warm the page cache (untimed), as tools/bench.py does
                while f.read(8 * MIB):
                    pass
            with contextlib.ExitStack() as stack:
                if not self.setup_engine_a(stack):
                    return
                for rep in range(self.a.reps):
                    info = RepInfo(rep, load_before=os.getloadavg())
                    self.reps.append(info)
                    own = self.own_sessions | ({self.engine_a.proc.pid} if self.engine_a else set())
                    cpu0 = _foreign_busy(own)
                    self.r.log(f"=== rep {rep + 1}/{self.a.reps}: load average {info.load_before}")
                    self.floor_rep()
                    info.seconds["floor"] = self.r.steps["floor"].runs[-1].seconds
                    repo = self.push_rep(rep, info)
                    if repo is not None:
                        self.load_rep(rep, info, repo)
                    if not (self.a.keep and rep == self.a.reps - 1):
                        bench.rmtree(self.run_dir / f"rep{rep}")
                    info.load_after = os.getloadavg()
                    cpu1 = _foreign_busy(own)
                    busy = [(cpu1[p][1] - cpu0.get(p, ("", 0.0))[1], cpu1[p][0]) for p in cpu1]
                    info.foreign = [f"{c:.0f} cpu-s {cmd}" for c, cmd in sorted(busy, reverse=True) if c >= 1.0][:6]
                    if info.foreign:
                        self.r.log("    other processes busy meanwhile: " + "; ".join(info.foreign))
        finally:
            self.meta["loadavg"]["end"] = os.getloadavg()
            self.meta["uptime_end"] = bench.tool_version(["uptime"])
            if not self.a.keep:
                bench.rmtree(self.run_dir)
            for d in (self.engines_dir, self.run_dir.parent):
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if empty: each engine removed its own storage

    # ---- report -----------------------------------------------------------------------------------
    def _sec(self, key: str) -> float | None:
        s = self.r.steps.get(key)
        return s.seconds if s is not None and s.ok else None

    def first_byte(self, key: str) -> float | None:
        vals = self.stream_first_byte.get(key)
        return statistics.median(vals) if vals else None

    def extra_checks(self) -> list[bench.Check]:
        checks: list[bench.Check] = []
        steps = self.r.steps

        def ratio(name: str, num: str, den: str, target: float | None) -> None:
            n, d = self._sec(num), self._sec(den)
            tgt = f"<= {target:.2f}x" if target else "info"
            if n is None or d is None or d <= 0:
                why = "not measured" if num not in steps or den not in steps else "step failed/skipped"
                checks.append(bench.Check(name, "-", tgt, None, why))
                return
            checks.append(bench.Check(name, f"{n / d:.2f}x ({n:.2f}/{d:.2f} s)", tgt, (n / d <= target) if target else None))

        ratio("1. push NAME:TAG / push docker-archive:FILE", "eng.push", "arc.push", TARGET_PUSH_VS_ARCHIVE)
        v = self._sec("eng.repeat")
        checks.append(
            bench.Check(
                "2. repeat push NAME:TAG (unchanged image)",
                bench._f(v, "{:.2f} s"),
                f"<= {TARGET_REPEAT_PUSH_S:.1f} s",
                None if v is None else v <= TARGET_REPEAT_PUSH_S,
            )
        )
        ratio("3. pull --load / (pull -o FILE + load FILE)", "eng.load", "file.total", TARGET_LOAD_VS_FILE)
        ratio("push NAME:TAG / engine save stream (floor)", "eng.push", "floor", None)
        ratio("push docker-archive:FILE / engine save stream", "arc.push", "floor", None)
        n, d = self._sec("eng.push"), self._sec("floor")
        if n is not None and d is not None:
            checks.append(bench.Check("push NAME:TAG - engine save stream", f"{n - d:+.2f} s", "info", None))
        fb, arc = self.first_byte("floor.names"), self._sec("arc.push")
        if n is not None and fb is not None and arc is not None:
            checks.append(
                bench.Check(
                    "push NAME:TAG / (save's first byte + push FILE)",
                    f"{n / (fb + arc):.2f}x ({n:.2f}/({fb:.2f}+{arc:.2f}) s)",
                    "info",
                    None,
                )
            )
        ratio("save stream: get?names=NAME / NAME/get", "floor.names", "floor", None)
        ratio("pull --load / load FILE alone", "eng.load", "file.load", None)
        ratio("pull -o FILE / pull --load", "file.pull", "eng.load", None)
        for name, errs in self.correct.items():
            bad = [e for e in errs if e]
            checks.append(
                bench.Check(
                    name, f"ok x{len(errs)}" if not bad else f"FAILED {len(bad)}/{len(errs)}", "ok", not bad, bad[0][:80] if bad else ""
                )
            )
        return checks

    def extra_report(self) -> list[str]:
        lines: list[str] = []
        ai = self.a_image
        if ai:
            a_meta = self.engine_meta.get("a", {})
            lines.append("engines: podman system service (Docker Engine API v1.41), vfs storage, one service per engine")
            lines.append(f"  engine A: {ai['name']} = {ai['id']}, {len(ai['layers'])} layers, size {(ai.get('size') or 0) / MIB:.1f} MiB")
            lines.append(f"            storage {a_meta.get('root')} ({'kept: --keep' if self.a.keep else 'deleted at the end'})")
            fs = self.engine_meta["fresh_start_s"]
            fd = self.engine_meta["fresh_delete_s"]
            if fs:
                lines.append(
                    f"  fresh empty engines: {len(fs)} started (median {sorted(fs)[len(fs) // 2]:.1f} s to answer /_ping, untimed),"
                    f" each stopped and its storage deleted after one load (median {sorted(fd)[len(fd) // 2] if fd else 0:.1f} s)"
                )
            lines.append(
                f"  fresh engines' storage under {self.engines_dir} ({self.engines_fs}; {self.engine_meta.get('engines_dir_why', '')})"
            )
            if self.settle_s > 0:
                lines.append(
                    f"  before each measured load: sync + wait until {self.settle_s:.0f} s after the previous engine's storage was"
                    f" deleted (--settle; {self.engine_meta.get('settled_s', 0):.0f} s waited in all)"
                )
            fg = self.engine_meta["free_gb"]
            if fg:
                lines.append(f"  free space at the checks (disk; tmpfs: capped by RAM): {min(fg):.1f} .. {max(fg):.1f} GB")
            for key, ns in self.stream_bytes.items():
                fb = self.first_byte(key)
                tot = self._sec(key)
                share = f" = {fb / tot:.0%} of its {tot:.2f} s" if fb is not None and tot else ""
                lines.append(
                    f"  {key}: engine's save stream {ns[-1] / MIB:.1f} MiB (archive {self.archive_bytes / MIB:.1f} MiB),"
                    f" first byte after {bench._f(fb)} s (median){share}"
                )
            lines.append("  client for the engine-only steps: python stdlib http.client over AF_UNIX, 1 MiB reads/writes")
            lines.append("")
        if self.reps:
            keys = ["floor", "arc.push", "eng.push", "eng.repeat", "file.pull", "file.load", "file.total", "eng.load"]
            lines.append("per rep (seconds; push / load order; load average before -> after)")
            hdr = f"  {'rep':>3s} " + " ".join(f"{k:>10s}" for k in keys) + "  order                          load avg"
            lines.append(hdr)
            for info in self.reps:
                vals = " ".join(f"{bench._f(info.seconds.get(k), '{:.2f}'):>10s}" for k in keys)
                order = f"{'>'.join(x[:3] for x in info.push_order)} / {'>'.join(x[:3] for x in info.load_order)}"
                lb, lx = (x[0] if x else None for x in (info.load_before, info.load_after))
                la = f"{bench._f(lb)} -> {bench._f(lx)}"
                lines.append(f"  {info.rep + 1:3d} {vals}  {order:30s} {la}")
                for fgn in info.foreign:
                    lines.append(f"        other process busy meanwhile: {fgn}")
            la = self.meta.get("loadavg", {})
            if la.get("end"):
                fmt = "/".join(["{:.2f}"] * 3)
                lines.append(
                    f"  machine load average (1/5/15 min): {fmt.format(*la['start'])} at start, {fmt.format(*la['end'])} at end,"
                    f" {self.meta.get('cpus')} cpus"
                )
            lines.append("")
        return lines

    def extra_json(self) -> dict[str, Any]:
        return {
            "engine": {
                "engine_a_image": self.a_image,
                "meta": self.engine_meta,
                "stream_bytes": self.stream_bytes,
                "stream_first_byte_s": self.stream_first_byte,
                "correctness": self.correct,
                "reps": [
                    {
                        "rep": i.rep,
                        "push_order": i.push_order,
                        "load_order": i.load_order,
                        "loadavg_before": i.load_before,
                        "loadavg_after": i.load_after,
                        "foreign_busy": i.foreign,
                        "seconds": i.seconds,
                    }
                    for i in self.reps
                ],
            }
        }


# =============================================================================================
# main
# =============================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark lfsreg's Docker engine push/load (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--workdir", default="/tmp/lfsreg-bench", help="work dir (image cache, registries, engines, logs)")
    ap.add_argument("--lfsreg", default=bench.default_lfsreg(), help="command that runs the lfsreg CLI")
    ap.add_argument("--lfsreg-rev", metavar="REV", help="run lfsreg from this commit of the checkout, not the working tree")
    ap.add_argument("--podman", default="podman", help="podman executable")
    ap.add_argument("--size-mb", type=int, default=1024, help="target image size in MiB (sum of layer files)")
    ap.add_argument("--layers", type=int, default=5, choices=range(1, len(bench.LAYER_SPECS) + 1), help="number of layers")
    ap.add_argument("--ref", default="bench/big:1", help="name:tag of the generated image")
    ap.add_argument("--image", help="use this docker-archive instead of generating one (must contain --ref)")
    ap.add_argument("--regenerate", action="store_true", help="ignore the cached image")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    ap.add_argument("--compression", choices=["zstd", "gzip", "none"], help="pass --compression to both pushes (default: lfsreg's)")
    ap.add_argument("--min-free-gb", type=float, default=5.0, help="refuse to start an engine or push with less free disk")
    ap.add_argument(
        "--engines-dir",
        default="auto",
        help="where the fresh engines of the load steps keep their storage: a directory, 'workdir' (under --workdir), or"
        " 'auto' (/dev/shm when it is a tmpfs with room, else workdir)",
    )
    ap.add_argument(
        "--settle",
        type=float,
        help=f"untimed wait (s) between deleting an engine's storage and the next measured load (default: {DEFAULT_SETTLE_S:.0f}"
        " when the engines live on ext4, else 0)",
    )
    ap.add_argument("--keep", action="store_true", help="keep engine A's storage (reused by the next --keep run) and the last rep's files")
    ap.add_argument("--timeout", type=float, default=3600, help="per-command timeout, seconds")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON ('-' = stdout; table then goes to stderr)")
    a = ap.parse_args(argv)
    if a.size_mb < 1 or a.reps < 1:
        ap.error("sizes and counts must be >= 1")
    # fields tools/bench.py's report reads
    a.scale_images = a.scale_tags = a.scale_reps = 0
    a.skip_lfsreg = False
    a.noise = 0.0
    return a


def main(argv: list[str] | None = None) -> int:
    return bench.execute(EngineBench(parse_args(argv), sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
