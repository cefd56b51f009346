#!/usr/bin/env python3
"""lfsreg over HTTP vs a do-it-yourself git + git-lfs workflow, against the same servers in one run.

``python tools/bench.py --https`` (or ``python tools/bench_https.py``, same options). Reuses
``tools/bench.py``: the generated image (cached in ``--workdir``), the sha256sum floor, the
measuring wrapper (wall time + peak RSS of each command), the report and the JSON.

Servers: the project's own test servers, started from ``tests/peers.py`` (``start_giftless`` +
``start_git_http``): stock ``git http-backend`` behind nginx + fcgiwrap with HTTP Basic auth,
and giftless (uWSGI, local storage) proxied as the LFS server on the same base URL
(``http://127.0.0.1:PORT/ORG/REPO.git`` and ``.../info/lfs``). They speak plain HTTP on the
loopback interface (no TLS). Every job gets a fresh empty bare repo (``create_repo``:
``git init --bare --initial-branch=main`` + ``http.receivepack true``).

1. git+lfs   push = ``tar -x`` + ``git lfs track '*.tar'`` + ``git add`` + ``git commit`` +
             ``git push`` (credentials from a ``credential.helper "store --file ..."`` in an
             isolated git env); pull = ``GIT_LFS_SKIP_SMUDGE=1 git clone`` + ``git lfs pull``.
2. lfsreg    per compression (default zstd, ``--compression none`` [, gzip with --with-gzip]):
             ``lfsreg push URL docker-archive:IMG`` (fresh ``LFSREG_CACHE``), ``lfsreg pull URL
             REF -o docker-archive:OUT`` with a cold cache, again with that (now warm) cache,
             a repeat push with the push's cache and one with a fresh cache; credentials from
             ``LFSREG_USERNAME``/``LFSREG_PASSWORD``; pulled archives verified (untimed).
3. report    the step table, HTTP traffic per step (nginx access log: requests, LFS object
             PUT/GET, bytes served), bytes uploaded (giftless storage of each repo), ratios
             lfsreg / git+lfs and targets: push and cold pull <= 1.0x git+lfs, peak RSS of every
             lfsreg command < 200 MB, the warm pull downloads no object, the repeat push
             uploads no object.

Repetitions (``--reps``, median reported) interleave the jobs (git+lfs, lfsreg zstd, lfsreg
none, git+lfs, ...), so a change in machine load hits all of them alike. Before measuring,
giftless's workers are warmed up and each repo's giftless storage directory is made up front:
giftless 0.6.2 answers 403 / 500 to the first *concurrent* object requests of a fresh worker /
a new repo (see ``warm_up_giftless`` and ``new_repo``), which would fail git-lfs pushes at random
and charge lfsreg's retries to its time. ``--lfsreg-rev REV`` measures a commit instead of a
working tree that is being edited.

Examples::

    python tools/bench.py --https --size-mb 100      # quick
    python tools/bench.py --https                    # ~1 GiB image, 5 layers
    python tools/bench_https.py --reps 3 --lfsreg-rev HEAD --json https.json

Needs what tools/install-test-deps.sh installs (nginx, fcgiwrap, apache2-utils, git-lfs, the
giftless venv, pytest: tests/peers.py is a pytest plugin) plus skopeo + umoci for the image.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import bench  # run as a script: tools/ is on sys.path
except ImportError:
    from tools import bench  # imported from the project root

TESTS_DIR = bench.PROJECT_ROOT / "tests"
MIB = bench.MIB
TARGET_PUSH_VS_GIT = 1.0  # lfsreg push (any compression) vs git+git-lfs push over HTTP
TARGET_PULL_VS_GIT = 1.0  # lfsreg pull, cold cache, vs clone + git lfs pull over HTTP
SETTLE_S = 0.25  # wait (untimed) after a command before reading the access log: nginx logs on close

# nginx "combined": addr - user [time] "METHOD PATH PROTO" STATUS BYTES "referer" "agent"
_LOG_RE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3}) (?P<sent>\d+|-)')


# =============================================================================================
# HTTP traffic, from the nginx access log
# =============================================================================================


@dataclass
class Traffic:
    """Requests nginx logged while one command ran."""

    requests: int = 0
    git: int = 0  # info/refs, git-upload-pack, git-receive-pack
    batch: int = 0  # LFS batch API
    obj_put: int = 0  # LFS object uploads
    obj_get: int = 0  # LFS object downloads
    verify: int = 0  # LFS verify callbacks
    other: int = 0  # e.g. the locks API
    sent: int = 0  # response body bytes sent by the server
    errors: dict[str, int] = field(default_factory=dict)  # HTTP status >= 400 -> count

    def add(self, o: Traffic) -> None:
        for k in ("requests", "git", "batch", "obj_put", "obj_get", "verify", "other", "sent"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        for k, v in o.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v

    def errors_text(self) -> str:
        return " ".join(f"{k}x{v}" for k, v in sorted(self.errors.items())) or "-"


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, off: int) -> Traffic:
        t = Traffic()
        try:
            with open(self.path, "rb") as f:
                f.seek(off)
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return t
        for line in data.splitlines():
            m = _LOG_RE.search(line)
            if not m:
                continue
            method, path, status = m["method"], m["path"], int(m["status"])
            t.requests += 1
            t.sent += int(m["sent"]) if m["sent"] != "-" else 0
            if status >= 400:
                t.errors[str(status)] = t.errors.get(str(status), 0) + 1
            if "/info/lfs/objects/batch" in path:
                t.batch += 1
            elif "/info/lfs/objects/storage/verify" in path:
                t.verify += 1
            elif "/info/lfs/objects/storage/" in path and method == "PUT":
                t.obj_put += 1
            elif "/info/lfs/objects/storage/" in path and method == "GET":
                t.obj_get += 1
            elif "/info/refs" in path or path.endswith(("/git-upload-pack", "/git-receive-pack")):
                t.git += 1
            else:
                t.other += 1
        return t


# =============================================================================================
# the benchmark
# =============================================================================================


def _import_peers() -> Any:
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import peers  # tests/peers.py (imports pytest and tests/gitenv.py)

    return peers


def _uwsgi_workers(port: int) -> set[str]:
    """Pids of the uWSGI workers listening on ``port`` (children of the uWSGI master)."""
    procs: dict[str, str] = {}  # pid -> ppid
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if any(b"uwsgi" in c for c in cmd[:2]) and f":{port}".encode() in b" ".join(cmd):
            procs[pid] = stat[stat.rfind(")") + 2 :].split()[1]
    return {pid for pid, ppid in procs.items() if ppid in procs}


def _lfsreg_label(comp: str) -> str:
    return "lfsreg push (default zstd)" if comp == "zstd" else f"lfsreg push --compression {comp}"


class HttpsBench(bench.Bench):
    title = "lfsreg HTTPS benchmark: lfsreg vs git + git-lfs against the same git/LFS servers"

    def __init__(self, args: argparse.Namespace, err: Any) -> None:
        super().__init__(args, err)
        self.run_dir = self.work / "run-https"
        self.traffic: dict[str, list[Traffic]] = {}
        self.uploaded: dict[str, dict[str, int]] = {}
        self.caches: dict[str, dict[str, int]] = {}
        self.server_info: dict[str, Any] = {}
        self.server: Any = None
        self.alog: AccessLog | None = None
        self._git_env: dict[str, str] | None = None
        self.comps = ["zstd", "none"] + (["gzip"] if args.with_gzip else [])

    # ---- servers --------------------------------------------------------------------------------
    def start_servers(self, stack: contextlib.ExitStack) -> Any:
        """giftless + nginx/git http-backend from tests/peers.py; None (failure noted) if they don't start."""
        st = self.r.step("srv", "start test servers (tests/peers.py: giftless, git http)", "setup")
        st.cmd = "peers.start_giftless + peers.start_git_http"
        sdir = self.work / "https-servers" / self.r.logdir.name
        t0 = time.monotonic()
        try:
            peers = _import_peers()
            gl = stack.enter_context(peers.start_giftless(sdir / "giftless"))
            server = stack.enter_context(peers.start_git_http(sdir / "git-http", lfs=gl))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # pytest.skip() (a missing tool) raises a BaseException
            self.r.note_failure(st, f"cannot start the test servers: {type(e).__name__}: {e}")
            return None
        st.runs.append(bench.Run(rc=0, seconds=time.monotonic() - t0, maxrss_kb=None))
        self.server = server
        self.alog = AccessLog(server.access_log)
        venv = peers.peers_dir() / "venv-giftless"
        self.server_info = {
            "url": server.url,
            "user": server.user,
            "giftless_url": gl.url,
            "workdir": str(sdir),
            "access_log": str(server.access_log),
            "giftless_log": str(gl.log),
        }
        self.meta["versions"].update(
            nginx=bench.tool_version([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
            giftless=bench.tool_version(
                [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print('giftless', m.version('giftless'))"]
            ),
            uwsgi=bench.tool_version([str(venv / "bin" / "uwsgi"), "--version"]),
        )
        self.r.log(f"servers: git + LFS on {server.url} (giftless {gl.url}), files under {sdir}")
        self.server_info["warmup"] = self.warm_up_giftless(peers, gl)
        if not self.a.keep:
            stack.callback(bench.rmtree, sdir)
        return server

    def warm_up_giftless(self, peers: Any, gl: Any) -> list[dict[str, int]]:
        """Get every giftless worker past its first requests before measuring anything.

        giftless 0.6.2 initialises its authenticators lazily and not thread-safely: while a
        uWSGI worker serves its first concurrent requests, some see only ``allow_anon`` (not
        the JWT pre-authorised action provider) and an object PUT/verify gets **403**
        (``DefaultIdentity.is_authorized`` refuses the anonymous user once an oid is given).
        Rounds of 16 concurrent small uploads (PUT + verify, straight to giftless) until two
        rounds in a row are clean and every uWSGI worker has served requests (pids in
        giftless's request log); the statuses of each round are reported.
        """
        rounds: list[dict[str, int]] = []
        repo = "_bench/warmup"
        (gl.storage / repo).mkdir(parents=True, exist_ok=True)  # see new_repo()
        clean = 0
        lock = threading.Lock()
        for rnd in range(8):
            objs = []
            for i in range(16):
                data = os.urandom(1024) + f"{rnd}/{i}".encode()
                objs.append((hashlib.sha256(data).hexdigest(), data))
            tally: dict[str, int] = {}
            try:
                st, body = peers.http_request(
                    "POST",
                    gl.lfs_url(repo) + "/objects/batch",
                    body=peers.lfs_batch_body("upload", [(o, len(d)) for o, d in objs]),
                    headers=peers.LFS_HEADERS,
                    timeout=30,
                )
                actions = {o["oid"]: o.get("actions", {}) for o in json.loads(body)["objects"]} if st == 200 else {}
            except (OSError, ValueError, KeyError) as e:
                self.r.log(f"giftless warm-up: batch failed: {e}")
                break

            def put(oid: str, data: bytes, actions: dict[str, Any] = actions, tally: dict[str, int] = tally) -> None:
                a = actions.get(oid, {})
                res = []
                try:
                    if "upload" in a:
                        res.append(peers.http_request("PUT", a["upload"]["href"], body=data, headers=a["upload"].get("header", {}))[0])
                    if "verify" in a:
                        hdrs = {**peers.LFS_HEADERS, **a["verify"].get("header", {})}
                        body = json.dumps({"oid": oid, "size": len(data)}).encode()
                        res.append(peers.http_request("POST", a["verify"]["href"], body=body, headers=hdrs)[0])
                except OSError:
                    res.append(0)
                with lock:
                    for status in res:
                        tally[str(status)] = tally.get(str(status), 0) + 1

            threads = [threading.Thread(target=put, args=o) for o in objs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rounds.append(tally)
            self.r.log(f"giftless warm-up round {rnd + 1}: HTTP statuses {tally}")
            clean = clean + 1 if set(tally) == {"200"} else 0
            workers = _uwsgi_workers(gl.port)
            served = set(re.findall(r"\[pid: (\d+)\|", gl.log.read_text(errors="replace"))) if gl.log.exists() else set()
            if clean >= 2 and workers <= served:
                break
            if clean >= 2:
                self.r.log(f"giftless warm-up: workers {sorted(workers - served)} have not served a request yet")
        return rounds

    def new_repo(self, name: str) -> Any:
        """A fresh empty repo on the server, with its giftless storage directory made up front.

        giftless's LocalStorage creates a repo's directory on the first PUT with an
        exists-check-then-mkdir: the first concurrent PUTs into a new repo race and some get
        **500** (``FileExistsError``). Making the directory first takes that out of the timings.
        """
        repo = self.server.create_repo(name)
        if repo.lfs_storage is not None:
            repo.lfs_storage.mkdir(parents=True, exist_ok=True)
        return repo

    def run_http(self, step: bench.Step, cmd: Sequence[str], *, cwd: Path, env: dict[str, str]) -> bench.Run:
        """``Runner.run`` + the HTTP requests nginx logged meanwhile (appended to ``self.traffic``)."""
        assert self.alog is not None
        off = self.alog.offset()
        run = self.r.run(step, cmd, cwd=cwd, env=env)
        time.sleep(SETTLE_S)
        t = self.alog.since(off)
        self.traffic.setdefault(step.key, []).append(t)
        self.r.log(
            f"    http: {t.requests} requests, {t.obj_put} object PUT, {t.obj_get} object GET, "
            f"{t.sent / MIB:.1f} MiB served, errors {t.errors_text()}"
        )
        return run

    def _sum_traffic(self, total: bench.Step, keys: list[str], n: int) -> None:
        t = Traffic()
        for k in keys[:n]:
            if self.traffic.get(k):
                t.add(self.traffic[k][-1])
        self.traffic.setdefault(total.key, []).append(t)

    # ---- 1. git + git-lfs over HTTP ---------------------------------------------------------------
    def git_env(self) -> dict[str, str] | None:
        """An isolated git env (own HOME) whose credential helper knows the server's user."""
        home = self.run_dir / "git-home"
        bench.rmtree(home)
        home.mkdir(parents=True)
        env = dict(self.env, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
        env.pop("GIT_CONFIG_GLOBAL", None)
        store = home / "git-credentials"
        store.write_text(self.server.credential_line() + "\n")
        store.chmod(0o600)
        cfgs = [
            ["git", "config", "--global", "user.name", "lfsreg bench"],
            ["git", "config", "--global", "user.email", "bench@lfsreg.invalid"],
            ["git", "config", "--global", "init.defaultBranch", "main"],
            ["git", "config", "--global", "advice.detachedHead", "false"],
            ["git", "config", "--global", "credential.helper", f"store --file {store}"],
            ["git", "lfs", "install", "--skip-repo"],
        ]
        for c in cfgs:
            p = subprocess.run(c, env=env, cwd=home, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                st = self.r.step("h.setup", "git env setup (https)", "setup")
                self.r.note_failure(st, f"{' '.join(c)} failed rc={p.returncode}", p.stderr[-2000:])
                return None
        return env

    def git_lfs_http(self, rep: int) -> bool:
        """Repetition ``rep`` of the git + git-lfs jobs; False: stop repeating (failure noted)."""
        g = "git+lfs/http"
        nb = self.archive_bytes
        keys = [
            ("h.git.untar", "tar -x (unpack docker-save)"),
            ("h.git.track", "git lfs track '*.tar'"),
            ("h.git.add", "git add -A"),
            ("h.git.commit", "git commit"),
            ("h.git.push", "git push (http, LFS upload to giftless)"),
        ]
        push = self.r.step("h.git.push_total", "git+lfs push (untar+track+add+commit+push)", g, nbytes=nb, parts=[k for k, _ in keys])
        subs = {k: self.r.step(k, lbl, g, indent=True) for k, lbl in keys}
        pkeys = [("h.git.clone", "GIT_LFS_SKIP_SMUDGE=1 git clone (http)"), ("h.git.lfspull", "git lfs pull (http)")]
        pull = self.r.step("h.git.pull_total", "git+lfs pull (clone+lfs pull)", g, nbytes=nb, parts=[k for k, _ in pkeys])
        psubs = {k: self.r.step(k, lbl, g, indent=True) for k, lbl in pkeys}
        allsteps = (push, pull, *subs.values(), *psubs.values())
        if self.image is None:
            for s in allsteps:
                s.skipped = "no image"
            return False
        if rep == 0:
            self._git_env = self.git_env()
        env = self._git_env
        if env is None:
            for s in allsteps:
                s.skipped = "git env setup failed"
            return False
        base = self.run_dir / "gitlfs"
        bench.rmtree(base)
        base.mkdir(parents=True)
        repo = self.new_repo(f"bench/gitlfs-{rep + 1}")
        src, clone = base / "src", base / "clone"
        prep = subprocess.run(
            ["sh", "-c", 'git init -q "$1" && git -C "$1" remote add origin "$2"', "sh", str(src), repo.url],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if prep.returncode != 0:
            self.r.note_failure(push, f"git init failed rc={prep.returncode}", prep.stderr[-2000:])
            return False
        cmds = {
            "h.git.untar": ["tar", "-xf", str(self.image), "-C", str(src)],
            "h.git.track": ["git", "lfs", "track", "*.tar"],
            "h.git.add": ["git", "add", "-A"],
            "h.git.commit": ["git", "commit", "-q", "-m", f"image {self.a.ref}"],
            "h.git.push": ["git", "push", "-q", "origin", "HEAD:refs/heads/main"],
        }
        runs = []
        for k, c in cmds.items():
            r = self.run_http(subs[k], c, cwd=src, env=env)
            runs.append(r)
            if not r.ok:
                break
        self._compose(push, runs, len(cmds))
        self._sum_traffic(push, list(cmds), len(runs))
        if not push.runs[-1].ok:
            pull.skipped = "push failed"
            return False
        cenv = dict(env, GIT_LFS_SKIP_SMUDGE="1")
        r1 = self.run_http(psubs["h.git.clone"], ["git", "clone", "-q", repo.url, str(clone)], cwd=base, env=cenv)
        runs = [r1]
        if r1.ok:
            runs.append(self.run_http(psubs["h.git.lfspull"], ["git", "lfs", "pull"], cwd=clone, env=env))
        self._compose(pull, runs, 2)
        self._sum_traffic(pull, [k for k, _ in pkeys], len(runs))
        if pull.runs[-1].ok:
            err = self._check_clone(src, clone)
            if err:
                self.r.note_failure(pull, err)
        self._record_upload("git+lfs", repo)
        if rep == self.a.reps - 1 and self.a.keep:
            return True
        bench.rmtree(base)
        self._drop_repo(repo)
        return True

    # ---- 2. lfsreg over HTTP ---------------------------------------------------------------------
    def lfsreg_env(self, cache: Path) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if not k.startswith("LFSREG_")}
        env.update(LFSREG_USERNAME=self.server.user, LFSREG_PASSWORD=self.server.password, LFSREG_CACHE=str(cache))
        return env

    def lfsreg_http(self, comp: str, rep: int) -> bool:
        """Repetition ``rep`` of the lfsreg jobs with ``--compression comp``; False: stop repeating."""
        g = f"lfsreg {comp}/http"
        nb = self.archive_bytes
        k = f"h.lr.{comp}"
        s_push = self.r.step(f"{k}.push", _lfsreg_label(comp), g, nbytes=nb, lfsreg=True)
        s_pull = self.r.step(f"{k}.pull", "lfsreg pull, cold cache", g, nbytes=nb, lfsreg=True)
        s_warm = self.r.step(f"{k}.warm", "lfsreg pull again, warm cache", g, nbytes=nb, lfsreg=True)
        s_rep = self.r.step(f"{k}.repeat", "lfsreg repeat push, push's cache", g, lfsreg=True)
        s_repc = self.r.step(f"{k}.repeat_cold", "lfsreg repeat push, empty cache", g, lfsreg=True)
        s_ver = self.r.step(f"{k}.verify", "verify pulled archives (untimed)", g, indent=True)
        later = [s_pull, s_warm, s_rep, s_repc, s_ver]
        if self.image is None or self.image_info is None:
            for s in (s_push, *later):
                s.skipped = "no image"
            return False
        src = f"docker-archive:{self.image}"
        base = self.run_dir / f"lfsreg-{comp}"
        bench.rmtree(base)
        base.mkdir(parents=True)
        repo = self.new_repo(f"bench/lfsreg-{comp}-{rep + 1}")
        c_push, c_pull, c_fresh = base / "cache-push", base / "cache-pull", base / "cache-fresh"
        out = base / "pulled.docker.tar"
        push_args = ["push", repo.url, src] + ([] if comp == "zstd" else ["--compression", comp])
        if not self.run_http(s_push, self.lfsreg(*push_args), cwd=base, env=self.lfsreg_env(c_push)).ok:
            for s in later:
                s.skipped = "push failed"
            self._record_upload(f"lfsreg {comp}", repo)
            return False
        for st in (s_pull, s_warm):
            pull = self.lfsreg("pull", repo.url, self.a.ref, "-o", f"docker-archive:{out}")
            r = self.run_http(st, pull, cwd=base, env=self.lfsreg_env(c_pull))
            if r.ok:
                self._verify(s_ver, out)
            bench.rmtree(out)
        self.run_http(s_rep, self.lfsreg(*push_args), cwd=base, env=self.lfsreg_env(c_push))
        self.run_http(s_repc, self.lfsreg(*push_args), cwd=base, env=self.lfsreg_env(c_fresh))
        self._record_upload(f"lfsreg {comp}", repo)
        for name, d in (("push", c_push), ("pull", c_pull), ("repeat push, fresh", c_fresh)):
            b, n = bench.tree_bytes(d)
            self.caches.setdefault(f"lfsreg {comp}", {})[f"{name} cache MiB"] = round(b / MIB, 1)
            self.caches[f"lfsreg {comp}"][f"{name} cache files"] = n
        if rep == self.a.reps - 1 and self.a.keep:
            return True
        bench.rmtree(base)
        self._drop_repo(repo)
        return True

    def _verify(self, s_ver: bench.Step, out: Path) -> None:
        if self.a.no_verify:
            s_ver.skipped = "--no-verify"
            return
        assert self.image_info is not None
        t0 = time.monotonic()
        err = bench.verify_pulled_archive(out, self.a.ref, self.image_info, hash_layers=True)
        dt = time.monotonic() - t0
        if err:
            s_ver.cmd = f"verify {out}"
            self.r.note_failure(s_ver, err)
        else:
            s_ver.runs.append(bench.Run(rc=0, seconds=dt, maxrss_kb=None))
            self.r.log(f"    verified pulled archive ({dt:.1f} s)")

    def _record_upload(self, name: str, repo: Any) -> None:
        lfs_b, lfs_n = bench.tree_bytes(repo.lfs_storage)
        git_b, _ = bench.tree_bytes(repo.path)
        self.uploaded[name] = {"lfs_bytes": lfs_b, "lfs_files": lfs_n, "git_bytes": git_b}

    def _drop_repo(self, repo: Any) -> None:
        """Free the disk a measured repo holds on the server (its git repo and LFS objects)."""
        bench.rmtree(repo.path)
        if repo.lfs_storage is not None:
            bench.rmtree(repo.lfs_storage)

    # ---- driver -----------------------------------------------------------------------------------
    def run_all(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.use_lfsreg_rev()
        self.collect_meta()
        self.meta["mode"] = "https"
        self.meta["loadavg"] = {"start": os.getloadavg()}
        self.setup_git_home()
        self.generate()
        self.floor()
        with contextlib.ExitStack() as stack:
            if self.start_servers(stack) is None:
                return
            # repetitions interleave the jobs (git+lfs, lfsreg zstd, lfsreg none, git+lfs, ...):
            # a change in machine load over the run hits every job alike
            jobs: dict[str, Callable[[int], bool]] = {}
            if not self.a.skip_git:
                jobs["git+lfs"] = self.git_lfs_http
            if not self.a.skip_lfsreg:
                for c in self.comps:
                    jobs[f"lfsreg {c}"] = functools.partial(self.lfsreg_http, c)
            for rep in range(self.a.reps):
                for name, job in list(jobs.items()):
                    if not job(rep):
                        del jobs[name]
        self.meta["loadavg"]["end"] = os.getloadavg()
        if not self.a.keep:
            bench.rmtree(self.run_dir)

    # ---- report -----------------------------------------------------------------------------------
    def _sec(self, key: str) -> float | None:
        s = self.r.steps.get(key)
        return s.seconds if s is not None and s.ok else None

    def _last_traffic(self, key: str) -> Traffic | None:
        ts = self.traffic.get(key)
        return ts[-1] if ts else None

    def extra_checks(self) -> list[bench.Check]:
        checks: list[bench.Check] = []
        steps = self.r.steps

        def ratio(name: str, num: str, den: str, target: float) -> None:
            n, d = self._sec(num), self._sec(den)
            tgt = f"<= {target:.2f}x"
            if n is None or d is None or d <= 0:
                why = "not measured" if num not in steps or den not in steps else "step failed/skipped"
                checks.append(bench.Check(name, "-", tgt, None, why))
                return
            checks.append(bench.Check(name, f"{n / d:.2f}x ({n:.2f}/{d:.2f} s)", tgt, n / d <= target))

        comps = [c for c in self.comps if f"h.lr.{c}.push" in steps]
        for c in comps:
            ratio(f"{_lfsreg_label(c)} / git+lfs push", f"h.lr.{c}.push", "h.git.push_total", TARGET_PUSH_VS_GIT)
            ratio(f"lfsreg pull {c}, cold cache / git+lfs pull", f"h.lr.{c}.pull", "h.git.pull_total", TARGET_PULL_VS_GIT)
        for c in comps:
            for key, what, attr, verb in (
                (f"h.lr.{c}.warm", f"warm pull ({c}) downloads no object", "obj_get", "GET"),
                (f"h.lr.{c}.repeat", f"repeat push ({c}, push's cache) uploads no object", "obj_put", "PUT"),
                (f"h.lr.{c}.repeat_cold", f"repeat push ({c}, empty cache) uploads no object", "obj_put", "PUT"),
            ):
                t = self._last_traffic(key)
                if t is None or not steps[key].ok:
                    checks.append(bench.Check(what, "-", "0 object " + verb, None, "step failed/skipped"))
                    continue
                n = getattr(t, attr)
                checks.append(bench.Check(what, f"{n} object {verb}, {t.sent / MIB:.1f} MiB in", "0 object " + verb, n == 0))
            for key, what in ((f"h.lr.{c}.repeat", "push's cache"), (f"h.lr.{c}.repeat_cold", "empty cache")):
                v = self._sec(key)
                checks.append(bench.Check(f"repeat push ({c}, {what}) time", bench._f(v, "{:.2f} s"), "info", None))
            st = steps.get(f"h.lr.{c}.verify")
            if st is not None and st.attempted:
                checks.append(bench.Check(f"pulled archives == pushed ({c})", "ok" if st.ok else "MISMATCH", "identical", st.ok))
        return checks

    def extra_report(self) -> list[str]:
        lines: list[str] = []
        si = self.server_info
        if si:
            v = self.meta.get("versions", {})
            lines.append("servers (tests/peers.py, started by this run; plain HTTP on the loopback, no TLS)")
            nginx, giftless = v.get("nginx", "nginx"), v.get("giftless", "giftless")
            lines.append(f"  git   {si['url']}/ORG/REPO.git: {nginx} + fcgiwrap + stock git http-backend, HTTP Basic auth")
            lines.append(f"  LFS   {si['url']}/ORG/REPO.git/info/lfs -> {giftless} (uWSGI {si['giftless_url']}), local storage")
            lines.append(f"  files {si['workdir']} (access log {si['access_log']})")
            lines.append("  lfsreg pulls write docker-archive:OUT (verified untimed); git+lfs pull = clone + git lfs pull")
            la = self.meta.get("loadavg", {})
            if la.get("end"):
                fmt = "/".join(["{:.2f}"] * 3)
                lines.append(
                    f"  machine load average (1/5/15 min): {fmt.format(*la['start'])} at start, {fmt.format(*la['end'])} at end,"
                    f" {self.meta.get('cpus')} cpus (client and servers share them)"
                )
            lines.append("")
        if self.traffic:
            lines.append("HTTP traffic per step (nginx access log; last rep)")
            hdr = "  " + " ".join(
                [f"{'step':56s}", f"{'reqs':>5s}", f"{'git':>4s}", f"{'batch':>5s}", f"{'PUT':>4s}", f"{'GET':>4s}", f"{'verify':>6s}"]
            )
            hdr += f" {'MiB served':>10s}  errors"
            lines.append(hdr)
            lines.append("  " + "-" * (len(hdr) - 2))
            last_group = None
            for k in self.r.order:
                t = self._last_traffic(k)
                if t is None:
                    continue
                s = self.r.steps[k]
                if s.group != last_group:
                    lines.append(f"  [{s.group}]")
                    last_group = s.group
                label = ("    " if s.indent else "  ") + s.label
                lines.append(
                    f"  {label[:56]:56s} {t.requests:5d} {t.git:4d} {t.batch:5d} {t.obj_put:4d} {t.obj_get:4d} {t.verify:6d} "
                    f"{t.sent / MIB:10.1f}  {t.errors_text()}"
                )
            lines.append("  (401s are the normal auth challenge; git and git-lfs first ask without credentials)")
            lines.append("")
        if self.uploaded:
            lines.append("bytes uploaded (apparent size on the server after the pushes)")
            hdr2 = f"  {'job':22s} {'LFS MiB (giftless)':>18s} {'objects':>7s} {'git repo MiB':>12s}"
            hdr2 += f" {'vs git-lfs':>11s} {'vs archive':>11s}"
            lines.append(hdr2)
            ref = self.uploaded.get("git+lfs", {}).get("lfs_bytes")
            for name, d in self.uploaded.items():
                vs = f"{d['lfs_bytes'] / ref:.2f}x" if ref else "-"
                va = f"{d['lfs_bytes'] / self.archive_bytes:.2f}x" if self.archive_bytes else "-"
                row = f"  {name:22s} {d['lfs_bytes'] / MIB:18.1f} {d['lfs_files']:7d} {d['git_bytes'] / MIB:12.2f}"
                lines.append(f"{row} {vs:>11s} {va:>11s}")
            lines.append("")
        if self.caches:
            lines.append("lfsreg caches (LFSREG_CACHE: git mirror + LFS objects) after the run")
            for name, d in self.caches.items():
                kinds = ("push", "pull", "repeat push, fresh")
                parts = [f"{w} {d[f'{w} cache MiB']:.1f} MiB in {d[f'{w} cache files']} files" for w in kinds]
                lines.append(f"  {name}: " + "; ".join(parts))
            lines.append("")
        return lines

    def extra_json(self) -> dict[str, Any]:
        return {
            "https": {
                "server": self.server_info,
                "traffic": {k: [asdict(t) for t in v] for k, v in self.traffic.items()},
                "uploaded": self.uploaded,
                "caches": self.caches,
            }
        }


def run(a: argparse.Namespace) -> int:
    """Run the HTTPS benchmark with parsed ``tools/bench.py`` arguments."""
    return bench.execute(HttpsBench(a, sys.stderr))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    a = bench.parse_args([*args, "--https"] if "--https" not in args else args)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
