"""serve: ``lfsreg serve`` vs docker-registry (distribution 2.8) for container clients, side by side.

* setup (untimed): the big image pushed into a local registry under ``--serve-clients`` + 1
  names (``lfsreg push --tag ...``, one push); ``lfsreg serve`` on it; docker-registry started
  empty and filled from ``lfsreg serve`` by ``skopeo copy`` (the same manifests and blob bytes).
* out: ``skopeo copy docker://... dir:OUT`` of the image from each server, alternating (warm: a
  local registry serves its own LFS files, no cache). Target: lfsreg <= 1.2x docker-registry.
* concurrent: ``--serve-clients`` (8) skopeo copies at once, each of another name, from each
  server: throughput (image bytes x clients / seconds; the names hold the same image, so both
  servers read the same files); peak server RSS (VmHWM, sampled). Targets: lfsreg's throughput
  >= 0.8x docker-registry's; lfsreg's peak RSS < 300 MB.
* ttfb: time to first byte of ``GET /v2/<name>/manifests/<tag>`` on a registry of
  ``--serve-images`` x ``--serve-tags`` (3000 x 10 = 30,000 tags; the scale benchmark's kind),
  warm (after one request), random tags, one keep-alive connection. Target: median < 50 ms.
* in, cold: pushing into each server, and pulling out of a cold ``lfsreg serve`` of an HTTP
  registry: :mod:`tools.bench.serve_more`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import time
from pathlib import Path

from tools.bench import image, serve_more
from tools.bench.report import Check, ratio
from tools.bench.runner import MIB, Run, rmtree
from tools.bench.serve_peers import PeakRss, docker_registry, lfsreg_serve
from tools.bench.session import Session

TARGET_OUT, TARGET_THROUGHPUT, TARGET_RSS_MB, TARGET_TTFB_S = 1.2, 0.8, 300.0, 0.050


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--serve-clients", type=int, default=8, help="serve: concurrent pulls (default 8)")
    ap.add_argument("--serve-images", type=int, default=3000, help="serve: images of the ttfb registry (default 3000)")
    ap.add_argument("--serve-tags", type=int, default=10, help="serve: tags per image of the ttfb registry (default 10)")


def _concurrent(skopeo_src: list[str], out: Path) -> list[str]:
    """One bash command running every ``skopeo copy`` at once; fails if any fails."""
    lines = ["set -u", "pids=()"]
    for i, src in enumerate(skopeo_src):
        lines.append(f"skopeo copy --src-tls-verify=false docker://{src} dir:{out}/c{i} >/dev/null & pids+=($!)")
    lines.append('rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc')
    return ["bash", "-c", "\n".join(lines)]


def _ttfb(host: str, names: list[str], n: int) -> list[float]:
    conn = http.client.HTTPConnection(*host.split(":"), timeout=60)
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    out = []
    for k, path in enumerate([names[0], *random.Random(7).choices(names, k=n)]):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Accept": accept})
        resp = conn.getresponse()  # returns once the status line and headers arrived
        first = time.perf_counter() - t0
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
        if k:  # the first request warms the server
            out.append(first)
    conn.close()
    return out


def run(s: Session) -> None:
    a = s.a
    img, _ = s.image()
    n = a.serve_clients
    names = [a.ref] + [f"{a.ref.split(':')[0]}-c{i}:1" for i in range(n)]
    work = s.run_dir / "serve"
    rmtree(work)
    work.mkdir(parents=True)
    info = s.data.setdefault("serve", {"clients": n})
    for lr in s.lfsregs[:1]:  # one revision: the comparison is with docker-registry
        env = lr.env({**s.env, "LFSREG_CACHE": str(work / "cache")})
        repo = work / "images.git"
        setup = s.r.step("serve.setup", f"setup: lfsreg push of the image as {len(names)} names (untimed)", "serve")
        tags = [x for name in names for x in ("--tag", name)]
        if not s.r.run(setup, lr.cmd("push", str(repo), f"docker-archive:{img}", *tags), env=env).ok:
            return
        with (
            lfsreg_serve(s, lr.cmd("serve", str(repo)), env, work / "serve.log") as (ours, our_pid),
            docker_registry(work / "registry") as (theirs, their_pid),
        ):
            fill = s.r.step("serve.fill", "setup: skopeo copy lfsreg serve -> docker-registry (untimed)", "serve")
            for name in names:
                cmd = [
                    "skopeo",
                    "copy",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    f"docker://{ours}/{name}",
                    f"docker://{theirs}/{name}",
                ]
                if not s.r.run(fill, cmd, env=s.env).ok:
                    return
            servers = {"lfsreg": (ours, our_pid), "registry": (theirs, their_pid)}
            for rep in range(a.reps):
                for who in ["lfsreg", "registry"] if rep % 2 == 0 else ["registry", "lfsreg"]:
                    host, _ = servers[who]
                    step = s.r.step(f"serve.out.{who}", f"skopeo copy out of {who} (dir:)", "serve: one pull", nbytes=s.image_bytes)
                    rmtree(work / "out")
                    s.r.run(
                        step, ["skopeo", "copy", "--src-tls-verify=false", f"docker://{host}/{a.ref}", f"dir:{work / 'out'}"], env=s.env
                    )
            for rep in range(a.reps):
                for who in ["lfsreg", "registry"] if rep % 2 == 0 else ["registry", "lfsreg"]:
                    host, pid = servers[who]
                    step = s.r.step(
                        f"serve.conc.{who}", f"{n} concurrent skopeo copies out of {who}", "serve: concurrent", nbytes=s.image_bytes * n
                    )
                    rmtree(work / "conc")
                    (work / "conc").mkdir()
                    with PeakRss(pid) as rss:
                        s.r.run(step, _concurrent([f"{host}/{name}" for name in names[1:]], work / "conc"), env=s.env)
                    info[f"peak RSS MB {who}"] = max(info.get(f"peak RSS MB {who}", 0), rss.peak_kb * 1024 / 1e6)
            rmtree(work / "conc")
            serve_more.run_push(s, lr, env, work / "out", work, info)
            rmtree(work / "out")
        serve_more.run_cold(s, lr, repo, work)
    _ttfb_run(s, work)


def _ttfb_run(s: Session, work: Path) -> None:
    a = s.a
    lr = s.lfsregs[0]
    arch = s.work / "scale" / f"scale-{a.serve_images}x{a.serve_tags}.docker.tar"
    if not arch.exists():
        arch.parent.mkdir(parents=True, exist_ok=True)
        image.scale_archive(arch, a.serve_images, a.serve_tags)
    env = lr.env({**s.env, "LFSREG_CACHE": str(work / "cache")})
    repo = work / "scale.git"
    setup = s.r.step("serve.scale", f"setup: lfsreg push of {a.serve_images} x {a.serve_tags} tags (untimed)", "serve")
    if not s.r.run(setup, lr.cmd("push", str(repo), f"docker-archive:{arch}"), env=env, stdout=work / "scale-push.out").ok:
        return
    step = s.r.step("serve.ttfb", f"manifest GET by tag, time to first byte ({a.serve_images * a.serve_tags} tags, warm)", "serve: ttfb")
    paths = [f"/v2/scale/img{i:04d}/manifests/t{t}" for i in range(a.serve_images) for t in range(a.serve_tags)]
    with lfsreg_serve(s, lr.cmd("serve", str(repo)), env, work / "serve-scale.log") as (host, _):
        try:
            values = _ttfb(host, paths, 200)
        except (OSError, RuntimeError) as exc:
            s.r.fail(step, str(exc))
            return
    step.runs += [Run(v) for v in values]
    s.data.setdefault("serve", {})["ttfb ms (median, p95, max)"] = [
        round(statistics.median(values) * 1000, 2),
        round(sorted(values)[int(len(values) * 0.95)] * 1000, 2),
        round(max(values) * 1000, 2),
    ]


def checks(s: Session) -> list[Check]:
    out = [ratio(s, "skopeo copy out of lfsreg serve / docker-registry", "serve.out.lfsreg", "serve.out.registry", TARGET_OUT)]
    ours, theirs = s.seconds("serve.conc.lfsreg"), s.seconds("serve.conc.registry")
    if ours and theirs:
        rate = theirs / ours  # same bytes: throughput ratio is the inverse of the time ratio
        total = s.data["serve"]["clients"] * s.image_bytes / MIB
        value = f"{rate:.2f}x ({total / ours:.0f} vs {total / theirs:.0f} MiB/s)"
        out.append(
            Check("concurrent throughput lfsreg serve / docker-registry", value, f">= {TARGET_THROUGHPUT:.1f}x", rate >= TARGET_THROUGHPUT)
        )
    rss = s.data.get("serve", {}).get("peak RSS MB lfsreg")
    if rss is not None:
        theirs_rss = s.data["serve"].get("peak RSS MB registry", 0)
        out.append(
            Check(
                "lfsreg serve peak RSS, concurrent pulls",
                f"{rss:.0f} MB (docker-registry {theirs_rss:.0f} MB)",
                f"< {TARGET_RSS_MB:.0f} MB",
                rss < TARGET_RSS_MB,
            )
        )
    ttfb = s.seconds("serve.ttfb")
    if ttfb is not None:
        out.append(
            Check(
                "manifest GET by tag, TTFB median (warm)", f"{ttfb * 1000:.1f} ms", f"< {TARGET_TTFB_S * 1000:.0f} ms", ttfb < TARGET_TTFB_S
            )
        )
    return out + serve_more.checks(s)


def report(s: Session) -> list[str]:
    data = s.data.get("serve")
    return [f"serve: {json.dumps(data)}", ""] if data else []


if __name__ == "__main__":
    sys.exit("run it as: python -m tools.bench serve")
