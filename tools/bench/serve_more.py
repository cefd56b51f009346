"""serve, continued: pushing into ``lfsreg serve`` vs docker-registry, and pulling out of a cold ``lfsreg serve``.

* in: ``skopeo copy dir:SRC docker://.../bench/pushed`` of the image into each server,
  alternating, each time into a fresh empty one (``lfsreg serve`` of a new local registry with a
  ``--token-file``, docker-registry with empty storage), so every blob is uploaded. SRC is the
  ``dir:`` copy the "out" step made (same blob bytes). Peak server RSS is sampled. Target:
  lfsreg <= 1.2x docker-registry.
* cold: the image copied (``lfsreg copy``, untimed) into a registry on the suite's HTTP git +
  giftless servers (``tests/peers``, plain HTTP on the loopback); ``lfsreg serve URL`` with an
  empty cache; ``skopeo copy`` out of it (every layer comes from giftless through the cache),
  then again from the same server (warm cache, remote registry). Reported beside
  docker-registry's "out" time; no target (the issue asks to report it).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tools.bench import https
from tools.bench.report import Check, ratio
from tools.bench.revs import Lfsreg
from tools.bench.runner import rmtree
from tools.bench.serve_peers import PeakRss, docker_registry, lfsreg_serve
from tools.bench.session import Session

TARGET_IN = 1.2


def run_push(s: Session, lr: Lfsreg, env: dict[str, str], src: Path, work: Path, info: dict[str, object]) -> None:
    """The "in" step (see the module docstring); ``src`` is a ``dir:`` copy of the image."""
    token = secrets.token_hex(16)
    tokens = work / "push-tokens"
    tokens.write_text(token + "\n")
    init = s.r.step("serve.in.init", "setup: lfsreg init of the push target (untimed)", "serve")
    for rep in range(s.a.reps):
        for who in ["lfsreg", "registry"] if rep % 2 == 0 else ["registry", "lfsreg"]:
            step = s.r.step(f"serve.in.{who}", f"skopeo copy into {who} (from dir:, empty server)", "serve: one push", nbytes=s.image_bytes)
            repo = work / "push.git"
            rmtree(repo)
            if who == "lfsreg":
                if not s.r.run(init, lr.cmd("init", str(repo)), env=env).ok:
                    return
                server = lfsreg_serve(s, lr.cmd("serve", str(repo), "--token-file", str(tokens)), env, work / "serve-push.log")
                creds = ["--dest-creds", f"bench:{token}"]
            else:
                server = docker_registry(work / "push-registry")
                creds = []
            with server as (host, pid), PeakRss(pid) as rss:
                cmd = ["skopeo", "copy", "--dest-tls-verify=false", *creds, f"dir:{src}", f"docker://{host}/{s.a.ref}"]
                s.r.run(step, cmd, env=s.env)
            key = f"peak RSS MB push {who}"
            info[key] = max(float(info.get(key, 0)), rss.peak_kb * 1024 / 1e6)  # type: ignore[arg-type]
            rmtree(repo)
            rmtree(work / "push-registry")


def run_cold(s: Session, lr: Lfsreg, local_repo: Path, work: Path) -> None:
    """The "cold" step (see the module docstring)."""
    try:
        server = https.start_servers(s)
    except RuntimeError as exc:
        s.r.fail(s.r.step("serve.cold.lfsreg", "skopeo copy out of lfsreg serve, cold", "serve: cold"), str(exc))
        return
    remote = server.create_repo("bench/serve-cold")

    def env_with(cache: Path) -> dict[str, str]:
        return lr.env({**s.env, "LFSREG_USERNAME": server.user, "LFSREG_PASSWORD": server.password, "LFSREG_CACHE": str(cache)})

    setup = s.r.step("serve.cold.setup", "setup: lfsreg copy of the image to the HTTP registry (untimed)", "serve")
    if not s.r.run(setup, lr.cmd("copy", str(local_repo), remote.url, s.a.ref), env=env_with(work / "cache-copy")).ok:
        return
    rmtree(work / "cache-copy")
    try:
        for _rep in range(s.a.reps):
            cache = work / "cache-cold"
            rmtree(cache)
            label = "skopeo copy out of lfsreg serve, HTTP registry, cold cache"
            cold = s.r.step("serve.cold.lfsreg", label, "serve: cold", nbytes=s.image_bytes)
            warm = s.r.step("serve.cold.warm", "... again from the same server (warm cache)", "serve: cold", nbytes=s.image_bytes)
            with lfsreg_serve(s, lr.cmd("serve", remote.url), env_with(cache), work / "serve-cold.log") as (host, _):
                for step in (cold, warm):
                    rmtree(work / "out-cold")
                    cmd = ["skopeo", "copy", "--src-tls-verify=false", f"docker://{host}/{s.a.ref}", f"dir:{work / 'out-cold'}"]
                    s.r.run(step, cmd, env=s.env)
            rmtree(cache)
    finally:
        rmtree(work / "out-cold")
        if not s.a.keep:
            rmtree(remote.path)
            rmtree(remote.lfs_storage)


def checks(s: Session) -> list[Check]:
    out = [
        ratio(s, "skopeo copy into lfsreg serve / docker-registry", "serve.in.lfsreg", "serve.in.registry", TARGET_IN),
        ratio(s, "skopeo copy out of lfsreg serve, cold HTTP registry / docker-registry", "serve.cold.lfsreg", "serve.out.registry"),
        ratio(s, "... warm cache, HTTP registry / docker-registry", "serve.cold.warm", "serve.out.registry"),
    ]
    data = s.data.get("serve", {})
    if "peak RSS MB push lfsreg" in data:
        rss = data["peak RSS MB push lfsreg"]
        out.append(
            Check(
                "lfsreg serve peak RSS, one push",
                f"{rss:.0f} MB (docker-registry {data.get('peak RSS MB push registry', 0):.0f} MB)",
                "< 300 MB",
                rss < 300,
            )
        )
    return out
