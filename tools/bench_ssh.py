#!/usr/bin/env python3
"""lfsreg over SSH vs lfsreg over HTTP, against the same git repositories and LFS server in one run.

``python tools/bench_ssh.py [--size-mb N] [--reps N] [--json FILE]`` (the options of
``tools/bench.py``). Reuses ``tools/bench.py`` (the generated ~1 GiB image cached in
``--workdir``, the measuring wrapper: wall time + peak RSS, the report, the JSON) and
``tools/bench_https.py`` (the test servers from ``tests/peers.py``: stock git http-backend
behind nginx with HTTP Basic auth + giftless as LFS server on the same base URL).

On top of those it starts Debian's OpenSSH ``sshd`` (``tests/peers.py``: ``start_sshd``) over
the same repositories, with a deploy key per repository whose forced command answers
``git-lfs-authenticate`` with the nginx LFS URL and its Basic credentials, as GitHub does.
So "SSH" is: git over SSH (paramiko, in-process) + LFS batch API and transfers over HTTP with
the header git-lfs-authenticate returned; "HTTPS" is plain git smart HTTP + the same LFS.

Per repetition and compression (default zstd, and ``none``, where the transport matters most),
interleaved so a change of machine load hits both alike, each on a fresh empty repository:
``lfsreg push`` over HTTP and over SSH, then ``lfsreg pull -o docker-archive:`` with a cold
cache over HTTP and over SSH (pulled archives verified, untimed), and ``lfsreg images`` (git
only: the fixed cost of each transport); odd repetitions run SSH first. Target: SSH <= 1.1x
HTTP for push and for pull (medians). Also reported: the mean of the paired differences, since
on a busy machine the second of two 1 GiB pushes tends to be slower whichever protocol it uses
(use an even ``--reps``, e.g. 4). The client and the servers share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

try:
    import bench  # run as a script: tools/ is on sys.path
    import bench_https
except ImportError:
    from tools import bench, bench_https  # imported from the project root

TARGET_SSH_VS_HTTPS = 1.1


class SshBench(bench_https.HttpsBench):
    title = "lfsreg SSH benchmark: lfsreg over SSH vs over HTTP, same git repositories and LFS server"

    def __init__(self, args: argparse.Namespace, err: Any) -> None:
        super().__init__(args, err)
        self.run_dir = self.work / "run-ssh"
        self.sshd: Any = None
        self.logins: dict[str, int] = {}

    def start_sshd(self, stack: contextlib.ExitStack) -> Any:
        st = self.r.step("ssh.srv", "start sshd (tests/peers.py: start_sshd)", "setup")
        st.cmd = "peers.start_sshd"
        try:
            peers = bench_https._import_peers()
            self.sshd = stack.enter_context(peers.start_sshd(self.work / "ssh-server" / self.r.logdir.name, self.server))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # pytest.skip() (a missing tool) raises a BaseException
            self.r.note_failure(st, f"cannot start sshd: {type(e).__name__}: {e}")
            return None
        st.runs.append(bench.Run(rc=0, seconds=0.0, maxrss_kb=None))
        self.meta["versions"]["sshd"] = bench.tool_version(["ssh", "-V"])
        self.meta["versions"]["paramiko"] = bench.tool_version(
            [sys.executable, "-c", "import paramiko; print('paramiko', paramiko.__version__)"]
        )
        self.r.log(f"sshd on {self.sshd.host}:{self.sshd.port} over {self.server.root}")
        return self.sshd

    def ssh_env(self, cache: Path, key: Any) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if not k.startswith(("LFSREG_", "SSH_"))}
        env.update(LFSREG_CACHE=str(cache), LFSREG_SSH_KEY=str(key.path), LFSREG_SSH_KNOWN_HOSTS=str(self.sshd.known_hosts))
        return env

    def job(self, comp: str, rep: int) -> bool:
        """Push then cold pull, HTTP then SSH, each into a fresh repository; False: stop repeating."""
        nb = self.archive_bytes
        labels = {"push": "lfsreg push over {}", "pull": "lfsreg pull over {}, cold cache"}
        steps = {
            (proto, op): self.r.step(f"s.{comp}.{proto}.{op}", labels[op].format(proto.upper()), f"lfsreg {comp}", nbytes=nb, lfsreg=True)
            for op in ("push", "pull")
            for proto in ("https", "ssh")
        }
        s_ver = self.r.step(f"s.{comp}.verify", "verify pulled archives (untimed)", f"lfsreg {comp}", indent=True)
        if self.image is None or self.image_info is None:
            for s in steps.values():
                s.skipped = "no image"
            return False
        base = self.run_dir / f"{comp}-{rep + 1}"
        bench.rmtree(base)
        base.mkdir(parents=True)
        src = f"docker-archive:{self.image}"
        comp_args = [] if comp == "zstd" else ["--compression", comp]
        ok = True
        repos = {}
        order = ("https", "ssh") if rep % 2 == 0 else ("ssh", "https")  # no side always goes first
        for proto in order:
            repo = repos[proto] = self.new_repo(f"bench/{proto}-{comp}-{rep + 1}")
            if proto == "https":
                url, env = repo.url, self.lfsreg_env(base / f"cache-{proto}-push")
            else:
                key = self.sshd.add_key(repo)
                url, env = self.sshd.url(repo), self.ssh_env(base / f"cache-{proto}-push", key)
            before = self.sshd.logins()
            ok = self.run_http(steps[(proto, "push")], self.lfsreg("push", url, src, *comp_args), cwd=base, env=env).ok and ok
            self.logins[f"{comp} {proto} push"] = self.sshd.logins() - before
        for proto in order:
            repo = repos[proto]
            out = base / f"pulled-{proto}.docker.tar"
            if proto == "https":
                url, env = repo.url, self.lfsreg_env(base / f"cache-{proto}-pull")
            else:
                key = self.sshd.add_key(repo)
                url, env = self.sshd.url(repo), self.ssh_env(base / f"cache-{proto}-pull", key)
            before = self.sshd.logins()
            if self.run_http(
                steps[(proto, "pull")], self.lfsreg("pull", url, self.a.ref, "-o", f"docker-archive:{out}"), cwd=base, env=env
            ).ok:
                self._verify(s_ver, out)
            else:
                ok = False
            self.logins[f"{comp} {proto} pull"] = self.sshd.logins() - before
            bench.rmtree(out)
        for proto in order:  # a command that moves no layer: the fixed cost of each transport
            st = self.r.step(f"s.{comp}.{proto}.images", f"lfsreg images over {proto.upper()} (no LFS)", f"lfsreg {comp}", lfsreg=True)
            if proto == "https":
                url, env = repos[proto].url, self.lfsreg_env(base / "cache-images-https")
            else:
                url, env = self.sshd.url(repos[proto]), self.ssh_env(base / "cache-images-ssh", self.sshd.add_key(repos[proto]))
            self.r.run(st, self.lfsreg("images", url), cwd=base, env=env)
        for proto, repo in repos.items():
            self._record_upload(f"lfsreg {comp} {proto}", repo)
            if not (rep == self.a.reps - 1 and self.a.keep):
                self._drop_repo(repo)
        if not self.a.keep:
            bench.rmtree(base)
        return ok

    def run_all(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.use_lfsreg_rev()
        self.collect_meta()
        self.meta["mode"] = "ssh-vs-https"
        self.meta["loadavg"] = {"start": os.getloadavg()}
        self.generate()
        with contextlib.ExitStack() as stack:
            if self.start_servers(stack) is None or self.start_sshd(stack) is None:
                return
            comps = [c for c in self.comps if c != "gzip" or self.a.with_gzip]
            alive = list(comps)
            for rep in range(self.a.reps):
                for comp in list(alive):
                    if not self.job(comp, rep):
                        alive.remove(comp)
        self.meta["loadavg"]["end"] = os.getloadavg()
        if not self.a.keep:
            bench.rmtree(self.run_dir)

    def extra_checks(self) -> list[bench.Check]:
        checks: list[bench.Check] = []
        for comp in self.comps:
            for op in ("push", "pull"):
                n, d = self._sec(f"s.{comp}.ssh.{op}"), self._sec(f"s.{comp}.https.{op}")
                name = f"lfsreg {op} ({comp}): SSH / HTTP"
                tgt = f"<= {TARGET_SSH_VS_HTTPS:.2f}x"
                if n is None or d is None or d <= 0:
                    checks.append(bench.Check(name, "-", tgt, None, "step failed/skipped"))
                else:
                    checks.append(bench.Check(name, f"{n / d:.2f}x ({n:.2f}/{d:.2f} s)", tgt, n / d <= TARGET_SSH_VS_HTTPS))
                pairs = [
                    (a.seconds, b.seconds)
                    for a, b in zip(self.r.steps[f"s.{comp}.ssh.{op}"].runs, self.r.steps[f"s.{comp}.https.{op}"].runs, strict=False)
                    if a.ok and b.ok and a.seconds and b.seconds
                ]
                if len(pairs) >= 2:  # the second command of a pair tends to be slower: alternate, then pair up
                    mean = sum(a - b for a, b in pairs) / len(pairs)
                    checks.append(
                        bench.Check(
                            f"lfsreg {op} ({comp}): mean of paired SSH - HTTP over {len(pairs)} reps",
                            f"{mean:+.2f} s",
                            "info (use an even --reps)",
                            None,
                        )
                    )
            n, d = self._sec(f"s.{comp}.ssh.images"), self._sec(f"s.{comp}.https.images")
            if n is not None and d is not None:
                checks.append(
                    bench.Check(f"fixed cost: lfsreg images ({comp} repo), SSH - HTTP", f"{n - d:+.2f} s ({n:.2f}/{d:.2f} s)", "info", None)
                )
            st = self.r.steps.get(f"s.{comp}.verify")
            if st is not None and st.attempted:
                checks.append(bench.Check(f"pulled archives == pushed ({comp})", "ok" if st.ok else "MISMATCH", "identical", st.ok))
        for what, n in self.logins.items():
            if " ssh " in f" {what} ":
                checks.append(bench.Check(f"SSH connections: {what}", str(n), "1", n == 1))
        return checks

    def extra_report(self) -> list[str]:
        lines = super().extra_report()
        if self.sshd is not None:
            lines[1:1] = [
                f"  ssh   ssh://{self.sshd.login}@{self.sshd.host}:{self.sshd.port}/ORG/REPO.git: "
                f"{self.meta['versions'].get('sshd', 'OpenSSH')} sshd, deploy key per repo, forced command, "
                "git-lfs-authenticate -> the LFS URL above"
            ]
        return lines


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return bench.execute(SshBench(bench.parse_args(args), sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
