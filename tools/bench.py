#!/usr/bin/env python3
"""lfsreg benchmark: lfsreg vs a do-it-yourself git + git-lfs workflow, in one run.

What it measures (each command runs through a tiny wrapper process that reports its wall
time and the peak RSS of its whole child tree, ``getrusage(RUSAGE_CHILDREN).ru_maxrss``):

1. generate  a realistic image (default ~1 GiB, 5 layers of real files copied from /usr, /opt,
             ...) with ``umoci init/new/insert`` + ``skopeo copy oci:... docker-archive:...``;
             cached under ``--workdir`` (re-runs skip it).
2. floor     one ``sha256sum`` pass over the docker-archive tarball.
3. git+lfs   push = ``tar -x`` + ``git lfs track '*.tar'`` + ``git add`` + ``git commit`` +
             ``git push`` to a fresh local bare repo; pull = ``GIT_LFS_SKIP_SMUDGE=1 git clone``
             + ``git lfs pull`` (isolated git env: HOME in the workdir, GIT_CONFIG_NOSYSTEM=1).
4. lfsreg    per compression (none, zstd [, gzip with --with-gzip]) on a fresh registry:
             init, push, pull -> docker-archive (verified), repeat push of the same image;
             bytes stored (REPO/lfs/objects) vs the git-lfs remote.
5. scale     one docker-archive with N images x T tags (default 1,000 x 10, written by
             ``tools/gen_scale_archive.py``) pushed with one ``lfsreg push``; ``lfsreg tags`` /
             ``lfsreg images`` timings; push of a small fresh image into that registry vs
             into an empty one.
6. report    table + ratios + targets (met / NOT met), optional JSON.

With ``--https`` (``tools/bench_https.py``) steps 3-5 are replaced by the same jobs against the
project's real test servers over HTTP (``tests/peers.py``: stock git http-backend behind nginx
with HTTP Basic auth + giftless as the LFS server on the same base URL): git + git-lfs push /
clone + ``git lfs pull`` vs ``lfsreg push URL`` / ``lfsreg pull URL`` (cold and warm cache),
each on a fresh empty repo; see that module's docstring.

Every step's failure is reported (exit status + stderr tail) and the run continues; the
exit status is 1 if any step failed (2 for bad usage).

Examples::

    python tools/bench.py                                   # full run (~1 GiB, 1,000 images)
    python tools/bench.py --size-mb 100 --scale-images 50   # quick smoke run
    python tools/bench.py --size-mb 60 --skip-lfsreg        # only generation, floor, git-lfs
    python tools/bench.py --lfsreg "lfsreg" --json results.json --reps 3
    python tools/bench.py --https --size-mb 100              # over HTTP against the test servers

Needs: git, git-lfs, tar, sha256sum, umoci, skopeo (``apt-get install -y skopeo umoci git-lfs``).
Python 3.10+, standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
GEN_VERSION = 1  # bump when the generated image recipe changes (invalidates the cache)
MIB = 1024 * 1024
MB = 1_000_000

# ---- targets -------------------------------------------------------------------------------
TARGET_NONE_VS_GIT = 0.5  # lfsreg push/pull --compression none vs git+git-lfs push/pull
TARGET_ZSTD_VS_GIT = 1.0  # lfsreg push/pull (zstd, default) vs git+git-lfs push/pull
TARGET_REPEAT_PUSH_S = 2.0  # repeat push of an image the registry already holds
TARGET_RSS_MB = 200.0  # peak RSS of every lfsreg command (MB = 10^6 bytes)
TARGET_LIST_S = 1.0  # lfsreg tags / images on the scale registry
TARGET_SCALE_PUSH_RATIO = 1.0  # small push into the scale registry vs into an empty one

# ---- the image generator's layers: (name, weight, source trees) ------------------------------
LAYER_SPECS: list[tuple[str, float, list[str]]] = [
    ("base-libs", 0.30, ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]),
    ("usr-share", 0.20, ["/usr/share"]),
    ("binaries", 0.15, ["/usr/bin", "/usr/sbin", "/usr/lib/git-core", "/usr/libexec"]),
    ("python", 0.20, ["/usr/lib/python3", "/usr/lib/python3.11", "/usr/local/lib", "/root/.pyenv/versions"]),
    ("app", 0.15, ["/usr/lib/jvm", "/opt/wheels", "/usr/lib/llvm-14", "/opt"]),
    ("extra", 0.10, ["/usr/lib/google-cloud-sdk", "/opt", "/usr/include"]),
]
FALLBACK_ROOTS = ["/usr", "/opt", "/etc", "/var/lib"]

# The wrapper every measured command runs under: wall time of the command and the peak RSS of
# its process tree.  Peak RSS = ru_maxrss of the reaped tree (the largest single process, KiB),
# taken from GNU time (%M) when /usr/bin/time exists: a child forked by Python starts with
# Python's ~14 MB high-water mark, which would hide small commands (sha256sum uses ~2 MB);
# otherwise from the wrapper's own getrusage(RUSAGE_CHILDREN).
WRAPPER = r"""
import json, os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
gt, rssf = "/usr/bin/time", out + ".rss"
use_gt = os.access(gt, os.X_OK)
full = [gt, "-q", "-f", "%M", "-o", rssf, *cmd] if use_gt else cmd
t0 = time.perf_counter()
try:
    rc = subprocess.run(full).returncode
except OSError as e:
    print(f"bench wrapper: cannot run {cmd[0]!r}: {e}", file=sys.stderr)
    rc = 127
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rss, src = ru.ru_maxrss, "rusage"
if use_gt:
    try:
        rss, src = int(open(rssf).read().split()[-1]), "gnu-time"
    except (OSError, ValueError, IndexError):
        pass
with open(out, "w") as f:
    json.dump({"rc": rc, "seconds": dt, "maxrss_kb": rss, "rss_source": src,
               "utime": ru.ru_utime, "stime": ru.ru_stime}, f)
"""

# Reference for what a Python tool can reach (OpenSSL SHA-NI usually beats coreutils sha256sum).
HASHLIB_PASS = "import hashlib,sys\nh=hashlib.sha256()\nwith open(sys.argv[1],'rb') as f:\n    while d:=f.read(1<<20): h.update(d)\n"

# =============================================================================================
# measurement
# =============================================================================================


@dataclass
class Run:
    """One execution of one command."""

    rc: int | None
    seconds: float | None
    maxrss_kb: int | None
    cpu_s: float | None = None
    error: str | None = None  # None = success
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Step:
    """A measured step (one row of the table); ``runs`` holds one Run per repetition."""

    key: str
    label: str
    group: str
    cmd: str = ""
    runs: list[Run] = field(default_factory=list)
    skipped: str | None = None
    nbytes: int | None = None  # data moved (for MiB/s)
    indent: bool = False
    lfsreg: bool = False  # an lfsreg command: peak RSS target applies
    parts: list[str] = field(default_factory=list)  # composite: keys of the sub-steps

    @property
    def attempted(self) -> bool:
        return bool(self.runs)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs) and self.skipped is None

    @property
    def seconds(self) -> float | None:
        vals = [r.seconds for r in self.runs if r.ok and r.seconds is not None]
        return statistics.median(vals) if vals else None

    @property
    def maxrss_mb(self) -> float | None:
        vals = [r.maxrss_kb for r in self.runs if r.maxrss_kb is not None]
        return max(vals) * 1024 / MB if vals else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "group": self.group,
            "cmd": self.cmd,
            "ok": self.ok,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "maxrss_mb": self.maxrss_mb,
            "bytes": self.nbytes,
            "runs": [
                {
                    "rc": r.rc,
                    "seconds": r.seconds,
                    "maxrss_kb": r.maxrss_kb,
                    "cpu_s": r.cpu_s,
                    "error": r.error,
                    "log": r.log,
                }
                for r in self.runs
            ],
        }


@dataclass
class Failure:
    step: str
    cmd: str
    rc: int | None
    error: str
    stderr_tail: str
    log: str


def tail(path: Path, lines: int = 15, chars: int = 2500) -> str:
    try:
        data = path.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
    except OSError:
        return ""
    out = "\n".join(data.rstrip().splitlines()[-lines:])
    return out[-chars:]


class Runner:
    """Runs commands under the measuring wrapper, logs output, collects failures."""

    def __init__(self, logdir: Path, timeout: float, err: TextIO) -> None:
        self.logdir = logdir
        self.timeout = timeout
        self.err = err
        self.steps: dict[str, Step] = {}
        self.order: list[str] = []
        self.failures: list[Failure] = []
        self.seq = 0
        self.t0 = time.monotonic()
        logdir.mkdir(parents=True, exist_ok=True)

    def step(self, key: str, label: str, group: str, **kw: Any) -> Step:
        if key not in self.steps:
            self.steps[key] = Step(key=key, label=label, group=group, **kw)
            self.order.append(key)
        return self.steps[key]

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=self.err, flush=True)

    def fail(self, step: Step, run: Run, cmd: str, stderr_tail: str = "") -> None:
        self.failures.append(Failure(step.label, cmd, run.rc, run.error or "failed", stderr_tail, run.log))

    def run(
        self,
        step: Step,
        cmd: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdout_path: Path | None = None,
    ) -> Run:
        """Run ``cmd`` measured; append the Run to ``step`` and return it."""
        self.seq += 1
        slug = f"{self.seq:03d}-{step.key}"
        out_p = stdout_path or self.logdir / f"{slug}.out"
        err_p = self.logdir / f"{slug}.err"
        res_p = self.logdir / f"{slug}.json"
        cmd_s = shlex.join(cmd)
        step.cmd = step.cmd or cmd_s
        with contextlib.suppress(OSError):
            os.sync()  # flush dirty pages of earlier steps so they don't bill this one
        self.log(f"{step.group}: {step.label} ... ({cmd_s[:150]})")
        run: Run
        with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
            try:
                p = subprocess.Popen(
                    [sys.executable, "-c", WRAPPER, str(res_p), *cmd],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=fo,
                    stderr=fe,
                    start_new_session=True,
                )
            except OSError as e:
                run = Run(rc=None, seconds=None, maxrss_kb=None, error=f"cannot start: {e}", log=str(err_p))
                step.runs.append(run)
                self.fail(step, run, cmd_s)
                return run
            try:
                p.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)  # the session we started for this command
                p.wait()
                run = Run(rc=None, seconds=None, maxrss_kb=None, error=f"timeout after {self.timeout:.0f} s", log=str(err_p))
            except KeyboardInterrupt:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
            else:
                try:
                    r = json.loads(res_p.read_text())
                except (OSError, ValueError) as e:
                    run = Run(
                        rc=p.returncode, seconds=None, maxrss_kb=None, error=f"wrapper failed (rc {p.returncode}): {e}", log=str(err_p)
                    )
                else:
                    rc = int(r["rc"])
                    run = Run(
                        rc=rc,
                        seconds=float(r["seconds"]),
                        maxrss_kb=int(r["maxrss_kb"]),
                        cpu_s=float(r["utime"]) + float(r["stime"]),
                        error=None if rc == 0 else f"exit status {rc}",
                        log=str(err_p),
                    )
        step.runs.append(run)
        if run.ok:
            self.log(f"    ok {run.seconds:.2f} s, peak RSS {(run.maxrss_kb or 0) / 1024:.0f} MiB")
        else:
            st = tail(err_p)
            self.log(f"    FAILED: {run.error}\n{_indent(st)}")
            self.fail(step, run, cmd_s, st)
        return run

    def note_failure(self, step: Step, error: str, detail: str = "") -> None:
        """Record a non-command failure (e.g. verification) on ``step``."""
        run = Run(rc=None, seconds=None, maxrss_kb=None, error=error)
        step.runs.append(run)
        self.failures.append(Failure(step.label, step.cmd, None, error, detail, ""))
        self.log(f"    FAILED: {step.label}: {error}")


def _indent(s: str, pre: str = "      | ") -> str:
    return "\n".join(pre + line for line in s.splitlines())


# =============================================================================================
# helpers
# =============================================================================================


def tree_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes of regular files, number of files) under ``path`` (0, 0 if absent)."""
    total = files = 0
    if not path.exists():
        return 0, 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                files += 1
    return total, files


def rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def tool_version(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT) -> str:
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    text = (p.stdout or p.stderr).strip().splitlines()
    first = text[0] if text else ""
    return first if p.returncode == 0 else f"error rc={p.returncode}: {first[:200]}"


def normalize_ref(ref: str) -> str:
    """docker.io/library/x:1 -> x:1, docker.io/a/b:1 -> a/b:1."""
    for pre in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if ref.startswith(pre):
            return ref[len(pre) :]
    return ref.removeprefix("library/")


@dataclass
class ArchiveImage:
    repo_tags: list[str]
    config_member: str
    config_digest: str
    diff_ids: list[str]
    layer_members: list[str]
    layer_sizes: list[int]


def read_archive(path: Path) -> list[ArchiveImage]:
    """Parse manifest.json + configs of a docker-archive (no layer hashing)."""
    out: list[ArchiveImage] = []
    with tarfile.open(path, "r:") as tf:
        members = {m.name.removeprefix("./"): m for m in tf.getmembers()}
        mf = tf.extractfile(members["manifest.json"])
        if mf is None:
            raise ValueError("manifest.json is not a file")
        manifest = json.loads(mf.read())
        for ent in manifest:
            cm = tf.extractfile(members[ent["Config"].removeprefix("./")])
            if cm is None:
                raise ValueError(f"config {ent['Config']} is not a file")
            cbytes = cm.read()
            cfg = json.loads(cbytes)
            sizes = []
            for lname in ent["Layers"]:
                m = members[lname.removeprefix("./")]
                while m.issym() or m.islnk():
                    target = m.linkname
                    if m.issym():
                        target = os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
                    m = members[target.removeprefix("./")]
                sizes.append(m.size)
            out.append(
                ArchiveImage(
                    repo_tags=list(ent.get("RepoTags") or []),
                    config_member=ent["Config"],
                    config_digest="sha256:" + hashlib.sha256(cbytes).hexdigest(),
                    diff_ids=list(cfg.get("rootfs", {}).get("diff_ids", [])),
                    layer_members=list(ent["Layers"]),
                    layer_sizes=sizes,
                )
            )
    return out


def verify_pulled_archive(path: Path, ref: str, expect: ArchiveImage, hash_layers: bool) -> str | None:
    """Check a pulled docker-archive holds ``expect``; return an error message or None."""
    try:
        imgs = read_archive(path)
    except (OSError, KeyError, ValueError, tarfile.TarError) as e:
        return f"cannot read pulled archive {path}: {type(e).__name__}: {e}"
    want = normalize_ref(ref)
    cand = [i for i in imgs if want in {normalize_ref(t) for t in i.repo_tags}]
    if not cand:
        return f"no image tagged {ref} in pulled archive (RepoTags: {[i.repo_tags for i in imgs]})"
    img = cand[0]
    if img.config_digest != expect.config_digest:
        return f"config digest {img.config_digest} != pushed {expect.config_digest}"
    if img.diff_ids != expect.diff_ids:
        return "diff_ids differ from the pushed image"
    if img.layer_sizes != expect.layer_sizes:
        return f"layer sizes {img.layer_sizes} != pushed {expect.layer_sizes}"
    if hash_layers:
        with tarfile.open(path, "r:") as tf:
            for lname, diff in zip(img.layer_members, img.diff_ids, strict=True):
                f = tf.extractfile(lname)
                if f is None:
                    return f"layer {lname} is not a file"
                h = hashlib.sha256()
                while chunk := f.read(4 * MIB):
                    h.update(chunk)
                if "sha256:" + h.hexdigest() != diff:
                    return f"layer {lname}: sha256 {h.hexdigest()} != diff_id {diff}"
    return None


# =============================================================================================
# the benchmark
# =============================================================================================


class Bench:
    title = "lfsreg benchmark"

    def __init__(self, args: argparse.Namespace, err: TextIO) -> None:
        self.a = args
        self.err = err
        self.work = Path(args.workdir).resolve()
        self.run_dir = self.work / "run"
        self.r = Runner(self.work / "logs" / time.strftime("%Y%m%d-%H%M%S"), args.timeout, err)
        self.lfsreg_cmd = shlex.split(args.lfsreg)
        self.env = self._make_env()
        self.meta: dict[str, Any] = {}
        self.bytes_stored: dict[str, dict[str, int]] = {}
        self.scale_info: dict[str, Any] = {}
        self.verify: dict[str, str] = {}  # label -> "ok" / error
        self.image: Path | None = None
        self.image_info: ArchiveImage | None = None
        self.archive_bytes = 0

    # ---- environment ---------------------------------------------------------------------
    def _make_env(self) -> dict[str, str]:
        env = dict(os.environ)
        orig_home = env.get("HOME", str(Path.home()))
        home = self.work / "home"
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
        )
        for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_LFS_SKIP_SMUDGE"):
            env.pop(k, None)
        # pyenv shims find their root through HOME unless PYENV_ROOT is set
        if "PYENV_ROOT" not in env and (Path(orig_home) / ".pyenv").is_dir():
            env["PYENV_ROOT"] = str(Path(orig_home) / ".pyenv")
        # `python -m lfsreg` works from a checkout without installing it
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def setup_git_home(self) -> bool:
        home = Path(self.env["HOME"])
        home.mkdir(parents=True, exist_ok=True)
        cfgs = [
            ["git", "config", "--global", "user.name", "lfsreg bench"],
            ["git", "config", "--global", "user.email", "bench@lfsreg.invalid"],
            ["git", "config", "--global", "init.defaultBranch", "main"],
            ["git", "config", "--global", "advice.detachedHead", "false"],
            ["git", "lfs", "install", "--skip-repo"],
        ]
        for c in cfgs:
            p = subprocess.run(c, env=self.env, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                st = self.r.step("setup", "git env setup", "setup")
                self.r.note_failure(st, f"{shlex.join(c)} failed rc={p.returncode}", p.stderr[-2000:])
                return False
        return True

    # ---- 1. generate -----------------------------------------------------------------------
    def generate(self) -> None:
        a = self.a
        if a.image:
            self.image = Path(a.image).resolve()
            self.meta["image_source"] = f"given: {self.image}"
            self._load_image_info()
            return
        gdir = self.work / "image"
        gdir.mkdir(parents=True, exist_ok=True)
        base = f"big-{a.size_mb}mib-{a.layers}l-v{GEN_VERSION}"
        out = gdir / f"{base}.docker.tar"
        meta_p = gdir / f"{base}.json"
        if out.exists() and meta_p.exists() and not a.regenerate:
            try:
                gm = json.loads(meta_p.read_text())
            except ValueError:
                gm = {}
            if gm.get("ref") == a.ref and gm.get("archive_bytes") == out.stat().st_size:
                self.r.log(f"generate: using cached {out}")
                self.image = out
                self.meta["image_source"] = "cached"
                self.meta["generated"] = gm
                self._load_image_info()
                return
        st = self.r.step("gen", "generate image (umoci + skopeo)", "generate")
        t0 = time.monotonic()
        ok, gm = self._build(gdir, out, st)
        if not ok:
            return
        gm["build_seconds"] = round(time.monotonic() - t0, 1)
        gm["archive_bytes"] = out.stat().st_size
        meta_p.write_text(json.dumps(gm, indent=1))
        self.image = out
        self.meta["image_source"] = "generated"
        self.meta["generated"] = gm
        self._load_image_info()

    def _load_image_info(self) -> None:
        assert self.image is not None
        try:
            imgs = read_archive(self.image)
        except (OSError, KeyError, ValueError, tarfile.TarError) as e:
            st = self.r.step("imginfo", "read image archive", "generate")
            self.r.note_failure(st, f"cannot read {self.image}: {type(e).__name__}: {e}")
            self.image = None
            return
        want = normalize_ref(self.a.ref)
        cand = [i for i in imgs if want in {normalize_ref(t) for t in i.repo_tags}]
        if not cand:
            st = self.r.step("imginfo", "read image archive", "generate")
            self.r.note_failure(st, f"{self.image} has no image tagged {self.a.ref}: {[i.repo_tags for i in imgs]}")
            self.image = None
            return
        self.image_info = cand[0]
        self.archive_bytes = self.image.stat().st_size
        self.meta["archive"] = {
            "path": str(self.image),
            "bytes": self.archive_bytes,
            "ref": self.a.ref,
            "layers": len(cand[0].diff_ids),
            "layer_bytes": cand[0].layer_sizes,
            "images_in_archive": len(imgs),
        }

    def _select(self, roots: list[str], cap: int, used: set[str], roots_used: list[str]) -> tuple[list[str], int]:
        """Pick files (regular files and symlinks) under ``roots`` until ~``cap`` tar bytes."""
        picked: list[str] = []
        cur = 0
        slack = min(256 * 1024, cap // 50)
        skip_prefixes = (str(self.work),)
        for root in roots:
            if cur >= cap - slack:
                break
            rroot = os.path.realpath(root)
            if not os.path.isdir(rroot):
                continue
            n_before = len(picked)
            for dirpath, dirnames, filenames in os.walk(rroot):
                dirnames.sort()
                if dirpath.startswith(skip_prefixes):
                    dirnames[:] = []
                    continue
                names = sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))])
                for n in names:
                    p = os.path.join(dirpath, n)
                    if p in used:
                        continue
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        cost = 512
                    elif stat.S_ISREG(st.st_mode):
                        if not os.access(p, os.R_OK):
                            continue
                        cost = 512 + math.ceil(st.st_size / 512) * 512
                    else:
                        continue
                    if cur + cost > cap:
                        continue
                    picked.append(p)
                    used.add(p)
                    cur += cost
                    if cur >= cap - slack:
                        break
                if cur >= cap - slack:
                    break
            if len(picked) > n_before:
                roots_used.append(root)
        return picked, cur

    def _build(self, gdir: Path, out: Path, st: Step) -> tuple[bool, dict[str, Any]]:
        a = self.a
        for tool in ("umoci", "skopeo"):
            if not shutil.which(tool):
                self.r.note_failure(st, f"{tool} not found (apt-get install -y skopeo umoci)")
                return False, {}
        layout = gdir / "build.oci"
        rmtree(layout)
        stage_root = gdir / "stage"
        rmtree(stage_root)
        rootless = [] if os.geteuid() == 0 else ["--rootless"]
        total = a.size_mb * MIB
        specs = LAYER_SPECS[: a.layers]
        wsum = sum(w for _n, w, _r in specs)
        used: set[str] = set()
        gm: dict[str, Any] = {"ref": a.ref, "size_mb": a.size_mb, "layers": []}
        genv = dict(os.environ)  # umoci/skopeo: the caller's normal env
        tag = "big"
        if not self.r.run(st, ["umoci", "init", "--layout", str(layout)], env=genv).ok:
            return False, gm
        if not self.r.run(st, ["umoci", "new", "--image", f"{layout}:{tag}"], env=genv).ok:
            return False, gm
        for i, (name, w, roots) in enumerate(specs):
            cap = int(total * w / wsum)
            roots_used: list[str] = []
            files, got = self._select(roots, cap, used, roots_used)
            if got < cap * 0.95:
                more, got2 = self._select(FALLBACK_ROOTS, cap - got, used, roots_used)
                files += more
                got += got2
            self.r.log(f"generate: layer {i + 1} {name}: {len(files)} files, {got / MIB:.1f} MiB (cap {cap / MIB:.1f})")
            stage = stage_root / f"l{i}"
            for p in files:
                dst = stage / p.lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if os.path.islink(p):
                        os.symlink(os.readlink(p), dst)
                    else:
                        shutil.copy2(p, dst, follow_symlinks=False)
                except OSError as e:
                    self.r.log(f"generate: skip {p}: {e}")
            gm["layers"].append({"name": name, "roots": roots_used, "files": len(files), "bytes": got})
            ok = self.r.run(
                st,
                [
                    "umoci",
                    "insert",
                    *rootless,
                    "--image",
                    f"{layout}:{tag}",
                    "--history.created_by",
                    f"lfsreg-bench layer {name}",
                    str(stage),
                    "/",
                ],
                env=genv,
            ).ok
            rmtree(stage)
            if not ok:
                return False, gm
        steps = [
            [
                "umoci",
                "config",
                *rootless,
                "--image",
                f"{layout}:{tag}",
                "--author",
                "lfsreg-bench",
                "--config.cmd",
                "/bin/sh",
                "--config.env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--config.label",
                f"org.lfsreg.bench.size_mb={a.size_mb}",
            ],
            ["umoci", "gc", "--layout", str(layout)],
        ]
        for c in steps:
            if not self.r.run(st, c, env=genv).ok:
                return False, gm
        tmp = out.with_name(out.name + ".tmp")
        rmtree(tmp)
        rmtree(out)
        if not self.r.run(st, ["skopeo", "copy", "-q", f"oci:{layout}:{tag}", f"docker-archive:{tmp}:{a.ref}"], env=genv).ok:
            return False, gm
        os.replace(tmp, out)
        if not a.keep:
            rmtree(layout)
        rmtree(stage_root)
        return True, gm

    # ---- 2. floor ------------------------------------------------------------------------------
    def floor(self) -> None:
        st = self.r.step("floor", "sha256sum docker-archive (floor)", "floor", nbytes=self.archive_bytes)
        if self.image is None:
            st.skipped = "no image"
            return
        # warm the page cache once (untimed) so every step starts from the same state
        with open(self.image, "rb") as f:
            while f.read(8 * MIB):
                pass
        py = self.r.step("floor.py", "python hashlib.sha256 pass (info, not the floor)", "floor", nbytes=self.archive_bytes)
        for _ in range(self.a.reps):
            self.r.run(st, ["sha256sum", str(self.image)], env=self.env)
            self.r.run(py, [sys.executable, "-c", HASHLIB_PASS, str(self.image)], env=self.env)

    # ---- 3. git + git-lfs --------------------------------------------------------------------
    def git_lfs(self) -> None:
        g = "git+lfs"
        nb = self.archive_bytes
        keys = [
            ("git.untar", "tar -x (unpack docker-save)"),
            ("git.track", "git lfs track '*.tar'"),
            ("git.add", "git add -A"),
            ("git.commit", "git commit"),
            ("git.push", "git push (local bare remote)"),
        ]
        push = self.r.step("git.push_total", "git+lfs push (untar+track+add+commit+push)", g, nbytes=nb, parts=[k for k, _ in keys])
        subs = {k: self.r.step(k, lbl, g, indent=True) for k, lbl in keys}
        pkeys = [("git.clone", "GIT_LFS_SKIP_SMUDGE=1 git clone"), ("git.lfspull", "git lfs pull")]
        pull = self.r.step("git.pull_total", "git+lfs pull (clone+lfs pull)", g, nbytes=nb, parts=[k for k, _ in pkeys])
        psubs = {k: self.r.step(k, lbl, g, indent=True) for k, lbl in pkeys}
        if self.image is None:
            for s in (push, pull, *subs.values(), *psubs.values()):
                s.skipped = "no image"
            return
        env = self.env
        for rep in range(self.a.reps):
            base = self.run_dir / "gitlfs"
            rmtree(base)
            base.mkdir(parents=True)
            src, remote, clone = base / "src", base / "remote.git", base / "clone"
            prep = subprocess.run(
                [
                    "sh",
                    "-c",
                    'git init -q --bare "$1" && git init -q "$2" && git -C "$2" remote add origin "$1"',
                    "sh",
                    str(remote),
                    str(src),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if prep.returncode != 0:
                self.r.note_failure(push, f"git init failed rc={prep.returncode}", prep.stderr[-2000:])
                break
            cmds = {
                "git.untar": ["tar", "-xf", str(self.image), "-C", str(src)],
                "git.track": ["git", "lfs", "track", "*.tar"],
                "git.add": ["git", "add", "-A"],
                "git.commit": ["git", "commit", "-q", "-m", f"image {self.a.ref}"],
                "git.push": ["git", "push", "-q", "origin", "HEAD:refs/heads/main"],
            }
            runs = []
            for k, c in cmds.items():
                r = self.r.run(subs[k], c, cwd=src, env=env)
                runs.append(r)
                if not r.ok:
                    break
            self._compose(push, runs, len(cmds))
            if not push.runs[-1].ok:
                pull.skipped = "push failed"
                break
            cenv = dict(env, GIT_LFS_SKIP_SMUDGE="1")
            r1 = self.r.run(psubs["git.clone"], ["git", "clone", "-q", str(remote), str(clone)], cwd=base, env=cenv)
            runs = [r1]
            if r1.ok:
                runs.append(self.r.run(psubs["git.lfspull"], ["git", "lfs", "pull"], cwd=clone, env=env))
            self._compose(pull, runs, 2)
            if pull.runs[-1].ok:
                err = self._check_clone(src, clone)
                if err:
                    self.r.note_failure(pull, err)
            lfs_b, lfs_n = tree_bytes(remote / "lfs" / "objects")
            all_b, _ = tree_bytes(remote)
            self.bytes_stored["git+lfs remote"] = {"lfs_objects": lfs_b, "lfs_files": lfs_n, "repo_total": all_b}
            if rep == self.a.reps - 1 and self.a.keep:
                break
            rmtree(base)

    @staticmethod
    def _compose(total: Step, runs: list[Run], expected: int) -> None:
        ok = len(runs) == expected and all(r.ok for r in runs)
        secs = sum(r.seconds or 0.0 for r in runs)
        rss = max((r.maxrss_kb or 0) for r in runs) if runs else None
        err = None if ok else next((r.error for r in runs if not r.ok), "incomplete")
        total.runs.append(Run(rc=0 if ok else None, seconds=secs if ok else None, maxrss_kb=rss, error=err))

    @staticmethod
    def _check_clone(src: Path, clone: Path) -> str | None:
        """Every *.tar regular file in the clone has the source's size (i.e. not a pointer)."""
        for p in src.rglob("*.tar"):
            if p.is_symlink() or not p.is_file() or ".git" in p.parts:
                continue
            q = clone / p.relative_to(src)
            if not q.is_file() or q.stat().st_size != p.stat().st_size:
                return f"git lfs pull: {q} missing or wrong size"
        return None

    # ---- 4. lfsreg ----------------------------------------------------------------------------
    def lfsreg(self, *args: str) -> list[str]:
        return [*self.lfsreg_cmd, *args]

    def lfsreg_big(self, comp: str) -> None:
        g = f"lfsreg {comp}"
        nb = self.archive_bytes
        s_init = self.r.step(f"lr.{comp}.init", "lfsreg init", g, lfsreg=True, indent=True)
        s_push = self.r.step(f"lr.{comp}.push", f"lfsreg push --compression {comp}", g, nbytes=nb, lfsreg=True)
        s_pull = self.r.step(f"lr.{comp}.pull", "lfsreg pull -o docker-archive", g, nbytes=nb, lfsreg=True)
        s_oci = self.r.step(f"lr.{comp}.pulloci", "lfsreg pull -o oci:DIR", g, nbytes=nb, lfsreg=True) if self.a.with_oci else None
        s_rep = self.r.step(f"lr.{comp}.repeat", "lfsreg repeat push (same image)", g, lfsreg=True)
        s_ver = self.r.step(f"lr.{comp}.verify", "verify pulled archive (untimed)", g, indent=True)
        allsteps = [s for s in (s_init, s_push, s_pull, s_oci, s_rep, s_ver) if s is not None]
        if self.image is None or self.image_info is None:
            for s in allsteps:
                s.skipped = "no image"
            return
        env = self.env
        base = self.run_dir / f"lfsreg-{comp}"
        for rep in range(self.a.reps):
            rmtree(base)
            base.mkdir(parents=True)
            repo = base / "registry.git"
            out = base / "pulled.docker.tar"
            src = f"docker-archive:{self.image}"
            if not self.r.run(s_init, self.lfsreg("init", str(repo)), cwd=base, env=env).ok:
                rmtree(repo)  # let push create it
            push_args = ["push", str(repo), src] + ([] if comp == "default" else ["--compression", comp])
            if not self.r.run(s_push, self.lfsreg(*push_args), cwd=base, env=env).ok:
                for s in (s_pull, s_rep, s_ver, s_oci):
                    if s is not None:
                        s.skipped = "push failed"
                break
            r = self.r.run(s_pull, self.lfsreg("pull", str(repo), self.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=env)
            if r.ok:
                if self.a.no_verify:
                    s_ver.skipped = "--no-verify"
                else:
                    t0 = time.monotonic()
                    err = verify_pulled_archive(out, self.a.ref, self.image_info, hash_layers=True)
                    dt = time.monotonic() - t0
                    if err:
                        s_ver.cmd = f"verify {out}"
                        self.r.note_failure(s_ver, err)
                    else:
                        s_ver.runs.append(Run(rc=0, seconds=dt, maxrss_kb=None))
                        self.r.log(f"    verified pulled archive ({dt:.1f} s)")
            else:
                s_ver.skipped = "pull failed"
            rmtree(out)
            if s_oci is not None:
                odir = base / "pulled.oci"
                self.r.run(s_oci, self.lfsreg("pull", str(repo), self.a.ref, "-o", f"oci:{odir}"), cwd=base, env=env)
                if s_oci.runs[-1].ok and not (odir / "index.json").is_file():
                    self.r.note_failure(s_oci, f"{odir}/index.json missing after pull -o oci:")
                rmtree(odir)
            self.r.run(s_rep, self.lfsreg(*push_args), cwd=base, env=env)
            lfs_b, lfs_n = tree_bytes(repo / "lfs" / "objects")
            all_b, _ = tree_bytes(repo)
            self.bytes_stored[f"lfsreg {comp}"] = {"lfs_objects": lfs_b, "lfs_files": lfs_n, "repo_total": all_b}
            if rep == self.a.reps - 1 and self.a.keep:
                return
        if not self.a.keep:
            rmtree(base)

    # ---- 6. scale -----------------------------------------------------------------------------
    def scale(self) -> None:
        from_tools = _import_gen_scale()
        a = self.a
        g = "scale"
        n, t = a.scale_images, a.scale_tags
        sdir = self.work / "scale"
        sdir.mkdir(parents=True, exist_ok=True)
        s_gen = self.r.step("sc.gen", f"generate {n}x{t} archive + skopeo inspect", g, indent=True)
        s_init = self.r.step("sc.init", "lfsreg init (scale registry)", g, lfsreg=True, indent=True)
        s_push = self.r.step("sc.push", f"lfsreg push {n} images x {t} tags", g, lfsreg=True)
        s_tags = self.r.step("sc.tags", "lfsreg tags", g, lfsreg=True)
        s_tagsj = self.r.step("sc.tagsj", "lfsreg tags --format json", g, lfsreg=True)
        s_imgs = self.r.step("sc.images", "lfsreg images", g, lfsreg=True)
        s_imgsj = self.r.step("sc.imagesj", "lfsreg images --format json", g, lfsreg=True)
        s_e = self.r.step("sc.fresh_empty", "push small fresh image -> empty registry", g, lfsreg=True)
        s_f = self.r.step("sc.fresh_full", f"push small fresh image -> {n}-image registry", g, lfsreg=True)
        later = [s_init, s_push, s_tags, s_tagsj, s_imgs, s_imgsj, s_e, s_f]

        arch = sdir / f"scale-{n}x{t}.docker.tar"
        try:
            if not arch.exists():
                from_tools.write_scale_archive(arch, n, t, name_prefix="scale/img")
            fresh = []
            for k in range(a.scale_reps):
                fp = sdir / f"fresh-{k}.docker.tar"
                if not fp.exists():
                    from_tools.write_scale_archive(
                        fp, 1, 1, name_prefix="fresh/img", salt=f"fresh-{k}", payload_bytes=a.fresh_kib * 1024, width=4
                    )
                fresh.append(fp)
        except OSError as e:
            self.r.note_failure(s_gen, f"cannot write scale archive: {e}")
            for s in later:
                s.skipped = "no scale archive"
            return
        self.scale_info["archive_bytes"] = arch.stat().st_size
        width = max(4, len(str(n - 1)))
        first, last = f"scale/img{0:0{width}d}:t0", f"scale/img{n - 1:0{width}d}:t{t - 1}"
        for ref in (first, last):
            r = self.r.run(s_gen, ["skopeo", "inspect", f"docker-archive:{arch}:{ref}"], env=dict(os.environ))
            if not r.ok:
                self.r.log(f"    scale archive {arch} not readable by skopeo as {ref}")
        if self.a.skip_lfsreg:
            for s in later:
                s.skipped = "--skip-lfsreg"
            return
        env = self.env
        base = self.run_dir / "scale"
        rmtree(base)
        base.mkdir(parents=True)
        repo = base / "scale-registry.git"
        if not self.r.run(s_init, self.lfsreg("init", str(repo)), cwd=base, env=env).ok:
            rmtree(repo)
        if not self.r.run(s_push, self.lfsreg("push", str(repo), f"docker-archive:{arch}"), cwd=base, env=env).ok:
            for s in later[2:]:
                s.skipped = "scale push failed"
            return
        lfs_b, lfs_n = tree_bytes(repo / "lfs" / "objects")
        all_b, _ = tree_bytes(repo)
        self.scale_info["registry"] = {"lfs_objects": lfs_b, "lfs_files": lfs_n, "repo_total": all_b}
        for st, args, kind in (
            (s_tags, ["tags", str(repo)], "tags"),
            (s_tagsj, ["tags", str(repo), "--format", "json"], "tags_json"),
            (s_imgs, ["images", str(repo)], "images"),
            (s_imgsj, ["images", str(repo), "--format", "json"], "images_json"),
        ):
            outp = base / f"{kind}.out"
            for _ in range(a.scale_reps):
                self.r.run(st, self.lfsreg(*args), cwd=base, env=env, stdout_path=outp)
            if st.ok:
                self.scale_info[kind] = _count_listing(outp, kind.endswith("json"))
        for k, fp in enumerate(fresh):
            empty = base / f"empty-{k}.git"
            init_ok = subprocess.run(self.lfsreg("init", str(empty)), cwd=base, env=env, capture_output=True, check=False).returncode == 0
            if not init_ok:
                rmtree(empty)
            # alternate the order so neither side always gets the warmer cache
            pair = [(s_e, empty), (s_f, repo)]
            if k % 2:
                pair.reverse()
            for st, rp in pair:
                self.r.run(st, self.lfsreg("push", str(rp), f"docker-archive:{fp}"), cwd=base, env=env)
        if not a.keep:
            rmtree(base)

    # ---- lfsreg from a commit ----------------------------------------------------------------
    def use_lfsreg_rev(self) -> None:
        """With ``--lfsreg-rev REV``: run lfsreg from ``git archive REV lfsreg`` (a snapshot under the workdir).

        Keeps a run consistent while the working tree is being edited. On failure the lfsreg
        steps are skipped and the failure is reported.
        """
        rev = self.a.lfsreg_rev
        if not rev:
            return
        st = self.r.step("lfsreg.src", f"export lfsreg from {rev}", "setup")
        p = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if p.returncode != 0:
            self.r.note_failure(st, f"git rev-parse {rev} failed rc={p.returncode}", p.stderr[-2000:])
            self.a.skip_lfsreg = True
            return
        sha = p.stdout.strip()
        dest = self.work / "lfsreg-src" / sha[:12]
        if not (dest / "lfsreg" / "__init__.py").is_file():
            tmp = dest.with_name(dest.name + ".tmp")
            rmtree(tmp)
            tmp.mkdir(parents=True)
            p = subprocess.run(
                ["sh", "-c", 'git -C "$1" archive --format=tar "$2" lfsreg | tar -x -C "$3"', "sh", str(PROJECT_ROOT), sha, str(tmp)],
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode != 0:
                self.r.note_failure(st, f"git archive {sha} lfsreg failed rc={p.returncode}", p.stderr[-2000:])
                self.a.skip_lfsreg = True
                return
            rmtree(dest)
            os.replace(tmp, dest)
        st.runs.append(Run(rc=0, seconds=0.0, maxrss_kb=None))
        self.env["PYTHONPATH"] = str(dest)  # instead of the checkout: `python -m lfsreg` imports the snapshot
        self.meta["lfsreg_rev"] = {"rev": rev, "commit": sha, "source": str(dest)}
        self.r.log(f"lfsreg: running {rev} = {sha[:12]} from {dest}")

    # ---- hooks for other modes (tools/bench_https.py) -----------------------------------------
    def extra_checks(self) -> list[Check]:
        """Checks listed before the generic ones (peak RSS, ...)."""
        return []

    def extra_report(self) -> list[str]:
        """Report lines printed before the checks."""
        return []

    def extra_json(self) -> dict[str, Any]:
        return {}

    # ---- driver --------------------------------------------------------------------------------
    def collect_meta(self) -> None:
        a = self.a
        self.meta.update(
            date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            host=platform.node(),
            cpus=os.cpu_count(),
            python=platform.python_version(),
            reps=a.reps,
            scale_reps=a.scale_reps,
            lfsreg_cmd=a.lfsreg,
            workdir=str(self.work),
            logdir=str(self.r.logdir),
            versions={
                "git": tool_version(["git", "--version"]),
                "git-lfs": tool_version(["git", "lfs", "version"], self.env),
                "skopeo": tool_version(["skopeo", "--version"]),
                "umoci": tool_version(["umoci", "--version"]),
                "sha256sum": tool_version(["sha256sum", "--version"]),
                "lfsreg": "skipped" if a.skip_lfsreg else tool_version(self.lfsreg("--version"), self.env, cwd=self.work),
            },
        )

    def run_all(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.use_lfsreg_rev()
        self.collect_meta()
        git_ok = self.setup_git_home()
        if not self.a.skip_big:
            self.generate()
            self.floor()
            if git_ok and not self.a.skip_git:
                self.git_lfs()
            if not self.a.skip_lfsreg:
                comps = ["none", "zstd"] + (["gzip"] if self.a.with_gzip else [])
                for c in comps:
                    self.lfsreg_big(c)
        if not self.a.skip_scale:
            self.scale()


def _import_gen_scale() -> Any:
    try:
        import gen_scale_archive as mod  # run as a script: tools/ is on sys.path
    except ImportError:
        from tools import gen_scale_archive as mod  # imported from the project root
    return mod


def _count_listing(path: Path, is_json: bool) -> dict[str, Any]:
    """Summarize `lfsreg tags/images` output: line count, or JSON entry count."""
    data = path.read_text(errors="replace")
    info: dict[str, Any] = {"bytes": len(data), "lines": len(data.splitlines())}
    if is_json:
        try:
            obj = json.loads(data)
        except ValueError as e:
            info["json_error"] = str(e)[:200]
        else:
            if isinstance(obj, list):
                info["entries"] = len(obj)
            elif isinstance(obj, dict):
                info["keys"] = len(obj)
                info["entries"] = sum(len(v) if isinstance(v, (list, dict)) else 1 for v in obj.values())
    return info


# =============================================================================================
# report
# =============================================================================================


def _f(x: float | None, fmt: str = "{:.2f}", none: str = "-") -> str:
    return none if x is None else fmt.format(x)


@dataclass
class Check:
    name: str
    value: str
    target: str
    met: bool | None  # None = not measured
    note: str = ""

    @property
    def status(self) -> str:
        return "n/a" if self.met is None else ("met" if self.met else "NOT met")


def build_checks(b: Bench) -> list[Check]:
    steps = b.r.steps
    checks: list[Check] = list(b.extra_checks())

    def sec(k: str) -> float | None:
        s = steps.get(k)
        return s.seconds if s is not None and s.ok else None

    def ratio_check(name: str, num: str, den: str, target: float | None) -> None:
        n, d = sec(num), sec(den)
        if n is None or d is None or d <= 0:
            why = "not measured" if num not in steps or den not in steps else "step failed/skipped"
            checks.append(Check(name, "-", f"<= {target:.2f}x" if target else "info", None, why))
            return
        r = n / d
        checks.append(
            Check(name, f"{r:.2f}x ({n:.2f}/{d:.2f} s)", f"<= {target:.2f}x" if target else "info", (r <= target) if target else None)
        )

    comps = [c for c in ("none", "zstd", "gzip") if f"lr.{c}.push" in steps]
    for c in comps:
        tgt = {"none": TARGET_NONE_VS_GIT, "zstd": TARGET_ZSTD_VS_GIT}.get(c)
        ratio_check(f"lfsreg push ({c}) / git+lfs push", f"lr.{c}.push", "git.push_total", tgt)
        ratio_check(f"lfsreg pull ({c}) / git+lfs pull", f"lr.{c}.pull", "git.pull_total", tgt)
    for c in comps:
        v = sec(f"lr.{c}.repeat")
        checks.append(
            Check(
                f"repeat push ({c})",
                _f(v, "{:.2f} s"),
                f"<= {TARGET_REPEAT_PUSH_S:.1f} s",
                None if v is None else v <= TARGET_REPEAT_PUSH_S,
            )
        )
    for c in comps:
        st = steps.get(f"lr.{c}.verify")
        if st is not None and st.attempted:
            checks.append(Check(f"pulled archive == pushed ({c})", "ok" if st.ok else "MISMATCH", "identical", st.ok))
    if "floor" in steps:
        for k in ("git.push_total", "git.pull_total", *[f"lr.{c}.{x}" for c in comps for x in ("push", "pull")]):
            if k in steps:
                ratio_check(f"{steps[k].group}: {steps[k].label} / floor", k, "floor", None)
    # peak RSS of every lfsreg command
    for k in b.r.order:
        s = steps[k]
        if s.lfsreg and s.attempted:
            mb = s.maxrss_mb
            name = f"peak RSS: {s.group}: {s.label}"
            if not s.ok:
                checks.append(Check(name, _f(mb, "{:.0f} MB"), f"< {TARGET_RSS_MB:.0f} MB", None, "command failed"))
            else:
                checks.append(Check(name, _f(mb, "{:.0f} MB"), f"< {TARGET_RSS_MB:.0f} MB", None if mb is None else mb < TARGET_RSS_MB))
    # scale
    if "sc.push" in steps:
        for k in ("sc.tags", "sc.tagsj", "sc.images", "sc.imagesj"):
            v = sec(k)
            checks.append(
                Check(f"scale: {steps[k].label}", _f(v, "{:.3f} s"), f"< {TARGET_LIST_S:.1f} s", None if v is None else v < TARGET_LIST_S)
            )
        fe, ff = sec("sc.fresh_empty"), sec("sc.fresh_full")
        if fe is not None and ff is not None and fe > 0:
            r = ff / fe
            lim = TARGET_SCALE_PUSH_RATIO * (1 + b.a.noise)
            checks.append(
                Check(
                    "scale: small push into full / into empty registry",
                    f"{r:.2f}x ({ff:.2f}/{fe:.2f} s)",
                    f"<= {lim:.2f}x (1.0 + {b.a.noise:.0%} noise)",
                    r <= lim,
                )
            )
        else:
            checks.append(Check("scale: small push into full / into empty registry", "-", "<= 1.0x", None, "step failed/skipped"))
        v = sec("sc.push")
        checks.append(Check(f"scale: push of {b.a.scale_images} images in one archive", _f(v, "{:.2f} s"), "info", None))
    return checks


def render(b: Bench) -> str:
    steps = b.r.steps
    a = b.a
    lines: list[str] = []
    floor = steps["floor"].seconds if "floor" in steps and steps["floor"].ok else None
    arch = b.meta.get("archive", {})
    gen = b.meta.get("generated", {})
    lines.append("=" * 100)
    lines.append(b.title)
    lines.append(
        f"  date {b.meta.get('date')}  host {b.meta.get('host')}  cpus {b.meta.get('cpus')}  "
        f"python {b.meta.get('python')}  reps {a.reps} (median)"
    )
    for k, v in b.meta.get("versions", {}).items():
        lines.append(f"  {k:10s} {v}")
    if b.meta.get("lfsreg_rev"):
        lr = b.meta["lfsreg_rev"]
        lines.append(f"  lfsreg from {lr['rev']} = commit {lr['commit'][:12]} (snapshot {lr['source']})")
    if arch:
        lay = ", ".join(f"{x / MIB:.0f}" for x in arch.get("layer_bytes", []))
        lines.append(
            f"  image {arch.get('ref')}: docker-archive {arch.get('bytes', 0) / MIB:.1f} MiB, "
            f"{arch.get('layers')} layers [{lay}] MiB ({b.meta.get('image_source')})"
        )
        if gen.get("build_seconds"):
            lines.append(f"  generated in {gen['build_seconds']} s (umoci + skopeo), cached in {b.work / 'image'}")
        if gen.get("layers"):
            lines.append(
                "  layer sources: " + "; ".join(f"{x['name']} {x['files']} files from {','.join(x['roots'])}" for x in gen["layers"])
            )
    lines.append(f"  logs: {b.r.logdir}")
    lines.append("")
    hdr = f"{'step':58s} {'time s':>9s} {'MiB/s':>8s} {'peakRSS MB':>10s} {'x floor':>8s}  status"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    last_group = None
    for k in b.r.order:
        s = steps[k]
        if s.group in ("setup", "generate") and s.ok:
            continue
        if s.group != last_group:
            lines.append(f"[{s.group}]")
            last_group = s.group
        secs = s.seconds
        rate = (s.nbytes / MIB / secs) if (s.nbytes and secs) else None
        xf = (secs / floor) if (secs is not None and floor and s.group != "scale") else None
        if s.skipped:
            status = f"skipped ({s.skipped})"
        elif not s.attempted:
            status = "not run"
        elif s.ok:
            status = "ok" + (f" x{len(s.runs)}" if len(s.runs) > 1 else "")
        else:
            status = "FAILED: " + "; ".join(sorted({r.error or "" for r in s.runs if not r.ok}))[:60]
        label = ("    " if s.indent else "  ") + s.label
        lines.append(
            f"{label[:58]:58s} {_f(secs, '{:.3f}' if (secs or 0) < 10 else '{:.2f}'):>9s} "
            f"{_f(rate, '{:.0f}'):>8s} {_f(s.maxrss_mb, '{:.0f}'):>10s} {_f(xf, '{:.2f}'):>8s}  {status}"
        )
    lines.append("")
    if b.bytes_stored:
        lines.append("bytes stored (apparent size)")
        hdr2 = f"  {'store':22s} {'lfs/objects MiB':>16s} {'files':>6s} {'repo total MiB':>15s} {'vs git-lfs':>11s} {'vs archive':>11s}"
        lines.append(hdr2)
        ref = b.bytes_stored.get("git+lfs remote", {}).get("lfs_objects")
        for name, d in b.bytes_stored.items():
            vs = f"{d['lfs_objects'] / ref:.2f}x" if ref else "-"
            va = f"{d['lfs_objects'] / b.archive_bytes:.2f}x" if b.archive_bytes else "-"
            lines.append(
                f"  {name:22s} {d['lfs_objects'] / MIB:16.1f} {d['lfs_files']:6d} {d['repo_total'] / MIB:15.1f} {vs:>11s} {va:>11s}"
            )
        lines.append("")
    if b.scale_info:
        si = b.scale_info
        lines.append(
            f"scale: {a.scale_images} images x {a.scale_tags} tags; archive {si.get('archive_bytes', 0) / MIB:.1f} MiB"
            + (
                f"; registry lfs/objects {si['registry']['lfs_objects'] / MIB:.2f} MiB in {si['registry']['lfs_files']}"
                f" files, repo total {si['registry']['repo_total'] / MIB:.1f} MiB"
                if "registry" in si
                else ""
            )
        )
        lines.append(f"  expected: {a.scale_images * a.scale_tags} tags in {a.scale_images} images")
        for kind in ("tags", "tags_json", "images", "images_json"):
            if kind in si:
                lines.append(f"  output of {kind}: {si[kind]}")
        lines.append("")
    lines.extend(b.extra_report())
    checks = build_checks(b)
    if checks:
        lines.append("ratios and targets")
        hdr3 = f"  {'check':62s} {'value':>26s} {'target':>30s}  status"
        lines.append(hdr3)
        lines.append("  " + "-" * (len(hdr3) - 2))
        for c in checks:
            lines.append(f"  {c.name[:62]:62s} {c.value:>26s} {c.target:>30s}  {c.status}" + (f" ({c.note})" if c.note else ""))
        lines.append("")
    if b.r.failures:
        lines.append(f"FAILURES ({len(b.r.failures)})")
        for f in b.r.failures:
            lines.append(f"  * {f.step}: {f.error}")
            if f.cmd:
                lines.append(f"    command: {f.cmd}")
            if f.stderr_tail:
                lines.append(_indent(f.stderr_tail, "    | "))
            if f.log:
                lines.append(f"    stderr log: {f.log}")
    else:
        lines.append("no failures")
    lines.append("=" * 100)
    return "\n".join(lines)


def to_json(b: Bench) -> dict[str, Any]:
    return {
        "meta": b.meta,
        "args": vars(b.a),
        "steps": {k: b.r.steps[k].to_json() for k in b.r.order},
        "bytes_stored": b.bytes_stored,
        "scale": b.scale_info,
        "checks": [
            {"name": c.name, "value": c.value, "target": c.target, "met": c.met, "status": c.status, "note": c.note}
            for c in build_checks(b)
        ],
        "failures": [f.__dict__ for f in b.r.failures],
        "ok": not b.r.failures,
        **b.extra_json(),
    }


# =============================================================================================
# main
# =============================================================================================


def default_lfsreg() -> str:
    return f"{shlex.quote(sys.executable)} -m lfsreg"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark lfsreg against git + git-lfs (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--workdir", default="/tmp/lfsreg-bench", help="work dir (image cache, repos, logs)")
    ap.add_argument("--lfsreg", default=default_lfsreg(), help="command that runs the lfsreg CLI")
    ap.add_argument(
        "--lfsreg-rev",
        metavar="REV",
        help="run lfsreg from this commit of the checkout (git archive into --workdir, on PYTHONPATH), not the working tree",
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="target image size in MiB (sum of layer files)")
    ap.add_argument("--layers", type=int, default=5, choices=range(1, len(LAYER_SPECS) + 1), help="number of layers")
    ap.add_argument("--ref", default="bench/big:1", help="name:tag of the generated image")
    ap.add_argument("--image", help="use this docker-archive instead of generating one (must contain --ref)")
    ap.add_argument("--regenerate", action="store_true", help="ignore the cached image")
    ap.add_argument("--reps", type=int, default=1, help="repetitions of every big step (median reported)")
    ap.add_argument("--scale-images", type=int, default=1000, help="images in the scale registry")
    ap.add_argument("--scale-tags", type=int, default=10, help="tags per image in the scale registry")
    ap.add_argument("--scale-reps", type=int, default=3, help="repetitions of tags/images and the fresh pushes")
    ap.add_argument("--fresh-kib", type=int, default=1024, help="payload of the small fresh image (KiB)")
    ap.add_argument("--noise", type=float, default=0.10, help="tolerance for the 'no slower' scale push check (0.10 = 10%%)")
    ap.add_argument("--with-gzip", action="store_true", help="also benchmark --compression gzip (slow)")
    ap.add_argument("--with-oci", action="store_true", help="also time pull -o oci:DIR")
    ap.add_argument("--skip-lfsreg", action="store_true", help="skip every lfsreg step")
    ap.add_argument("--skip-git", action="store_true", help="skip the git + git-lfs baseline")
    ap.add_argument("--skip-big", action="store_true", help="skip the big image (generate/floor/git/lfsreg)")
    ap.add_argument("--skip-scale", action="store_true", help="skip the scale part")
    ap.add_argument(
        "--https",
        action="store_true",
        help="instead of the local git/lfsreg/scale parts: push/pull over HTTP against the test servers (tests/peers.py)",
    )
    ap.add_argument("--no-verify", action="store_true", help="don't hash-check pulled archives")
    ap.add_argument("--keep", action="store_true", help="keep repos/registries/clones of the last rep")
    ap.add_argument("--timeout", type=float, default=3600, help="per-command timeout, seconds")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON ('-' = stdout; table then goes to stderr)")
    a = ap.parse_args(argv)
    if a.size_mb < 1 or a.reps < 1 or a.scale_images < 1 or a.scale_tags < 1 or a.scale_reps < 1:
        ap.error("sizes and counts must be >= 1")
    return a


def _import_https() -> Any:
    try:
        import bench_https as mod  # run as a script: tools/ is on sys.path
    except ImportError:
        from tools import bench_https as mod  # imported from the project root
    return mod


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.https:
        return int(_import_https().run(a))
    return execute(Bench(a, sys.stderr))


def execute(b: Bench) -> int:
    """Run the benchmark ``b``, print and save the report; the exit status."""
    a = b.a
    out: TextIO = sys.stderr if a.json == "-" else sys.stdout
    interrupted = False
    try:
        b.run_all()
    except KeyboardInterrupt:
        interrupted = True
        b.r.log("interrupted: reporting what was measured")
    text = render(b)
    print(text, file=out, flush=True)
    (b.r.logdir / "report.txt").write_text(text + "\n")
    data = to_json(b)
    (b.r.logdir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    if a.json == "-":
        json.dump(data, sys.stdout, indent=1, default=str)
        print()
    elif a.json:
        Path(a.json).write_text(json.dumps(data, indent=1, default=str) + "\n")
    if interrupted:
        return 130
    return 1 if b.r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
