"""ssh: lfsreg over SSH vs over HTTP, against the same git repositories and LFS server, in one run.

On top of the https scenario's servers, Debian's OpenSSH ``sshd`` (``tests/peers``' ``start_sshd``)
serves the same repositories with a deploy key per repository whose forced command answers
``git-lfs-authenticate`` with the nginx LFS URL, as GitHub does: SSH = git over SSH (paramiko,
in-process) + the LFS API over HTTP with the header it handed out.

Per repetition, compression (none and zstd) and revision, each into a fresh repository, SSH and
HTTP in turn (odd repetitions SSH first): ``push``, ``pull -o docker-archive:`` with a cold cache
(verified), ``images`` (git only: each transport's fixed cost). Targets: SSH <= 1.1x HTTP for
push and pull; one SSH connection per command. An even ``--reps`` pairs the orders up.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools.bench import https, local
from tools.bench.report import Check, passed, ratio
from tools.bench.revs import Lfsreg
from tools.bench.runner import rmtree, tool_version
from tools.bench.session import Session

TARGET_SSH_VS_HTTP = 1.1


def add_arguments(ap: argparse.ArgumentParser) -> None:
    pass


def _job(s: Session, server: Any, sshd: Any, comp: str, lr: Lfsreg, rep: int) -> None:
    img, _ = s.image()
    g, nb = f"lfsreg {comp} ssh/http", s.image_bytes
    base = s.run_dir / f"ssh-{comp}-{lr.name}"
    rmtree(base)
    base.mkdir(parents=True)
    order = ("https", "ssh") if rep % 2 == 0 else ("ssh", "https")
    repos = {proto: server.create_repo(f"bench/{proto}-{comp}-{lr.name}-{rep + 1}") for proto in order}

    def where(proto: str, cache: str) -> tuple[str, dict[str, str]]:
        env = {k: v for k, v in s.env.items() if not k.startswith("SSH_")}
        env["LFSREG_CACHE"] = str(base / f"cache-{proto}-{cache}")
        if proto == "https":
            return repos[proto].url, lr.env({**env, "LFSREG_USERNAME": server.user, "LFSREG_PASSWORD": server.password})
        key = sshd.add_key(repos[proto])
        return sshd.url(repos[proto]), lr.env({**env, "LFSREG_SSH_KEY": str(key.path), "LFSREG_SSH_KNOWN_HOSTS": str(sshd.known_hosts)})

    labels = {"push": "lfsreg push over {}", "pull": "lfsreg pull over {}, cold cache", "images": "lfsreg images over {}"}
    steps = {
        (op, proto): s.lfsreg_step(f"ssh.{comp}.{proto}.{op}", label.format(proto.upper()), g, lr, nbytes=nb if op != "images" else None)
        for op, label in labels.items()
        for proto in ("https", "ssh")
    }
    verify = s.lfsreg_step(f"ssh.{comp}.verify", "verify the pulled archives (untimed)", g, lr, lfsreg=False, indent=True)
    logins = s.data.setdefault("ssh logins", {})
    for op in labels:
        for proto in order:
            step = steps[op, proto]
            url, env = where(proto, op)
            out = base / f"pulled-{proto}.docker.tar"
            args = {"push": ["push", url, f"docker-archive:{img}", "--compression", comp],
                    "pull": ["pull", url, s.a.ref, "-o", f"docker-archive:{out}"], "images": ["images", url]}[op]  # fmt: skip
            before = sshd.logins()
            if s.r.run(step, lr.cmd(*args), cwd=base, env=env).ok and op == "pull":
                s.verify(verify, out)
            if proto == "ssh":
                logins[f"{op} ({comp}) [{lr.name}]"] = sshd.logins() - before
            rmtree(out)
    if not s.a.keep:
        rmtree(base)
        for repo in repos.values():
            rmtree(repo.path)
            rmtree(repo.lfs_storage)


def run(s: Session) -> None:
    server = https.start_servers(s)
    sshd = https.enter(s.stack, "sshd", https.peers().start_sshd(s.work / "servers" / f"{s.r.logdir.name}-ssh", server))
    s.meta["versions"]["sshd"] = tool_version(["ssh", "-V"])
    s.meta["versions"]["paramiko"] = tool_version([sys.executable, "-c", "import paramiko; print(paramiko.__version__)"])
    for rep in range(s.a.reps):
        for comp in local.comps(s):
            for lr in s.in_turn(rep):
                _job(s, server, sshd, comp, lr, rep)


def _paired(s: Session, a: str, b: str) -> str | None:
    """Mean of the paired differences a - b over the repetitions (the second of a pair tends to be slower)."""
    pairs = [(x.seconds, y.seconds) for x, y in zip(s.r.steps[a].runs, s.r.steps[b].runs, strict=False) if x.seconds and y.seconds]
    return f"{sum(x - y for x, y in pairs) / len(pairs):+.2f} s over {len(pairs)} pairs" if len(pairs) >= 2 else None


def checks(s: Session) -> list[Check]:
    out: list[Check | None] = []
    for lr in s.lfsregs:
        for comp in local.comps(s):
            k = f"ssh.{comp}"
            for op in ("push", "pull"):
                ssh_key, http_key = f"{k}.ssh.{op}@{lr.name}", f"{k}.https.{op}@{lr.name}"
                out.append(ratio(s, f"[{lr.name}] lfsreg {op} ({comp}): SSH / HTTP", ssh_key, http_key, TARGET_SSH_VS_HTTP))
                if ssh_key in s.r.steps and (mean := _paired(s, ssh_key, http_key)):
                    out.append(Check(f"[{lr.name}] lfsreg {op} ({comp}): mean paired SSH - HTTP", mean))
            n, d = s.seconds(f"{k}.ssh.images@{lr.name}"), s.seconds(f"{k}.https.images@{lr.name}")
            if n is not None and d is not None:
                out.append(Check(f"[{lr.name}] fixed cost: lfsreg images ({comp}), SSH - HTTP", f"{n - d:+.2f} s ({n:.2f}/{d:.2f} s)"))
            out.append(passed(s, f"[{lr.name}] pulled archives == pushed ({comp})", f"{k}.verify@{lr.name}"))
    for what, n in s.data.get("ssh logins", {}).items():
        out.append(Check(f"SSH connections: {what}", str(n), "1", n == 1))
    return [c for c in out if c is not None]


def report(s: Session) -> list[str]:
    return (
        []
        if "servers" not in s.meta
        else [f"ssh: OpenSSH sshd, a deploy key per repository, git-lfs-authenticate -> {s.meta['servers']['git+LFS']}", ""]
    )
