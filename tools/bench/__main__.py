"""``python -m tools.bench SCENARIO... [OPTIONS]``: the one runner (see ``tools/bench/__init__.py``)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from types import ModuleType

from tools.bench import compressor, cost, engine, https, listing, local, maintain, partial, report, retention, scale, serve, ssh
from tools.bench.runner import rmtree
from tools.bench.session import Session

SCENARIOS: dict[str, ModuleType] = {
    "local": local,
    "scale": scale,
    "https": https,
    "ssh": ssh,
    "engine": engine,
    "cost": cost,
    "retention": retention,
    "serve": serve,
}
SCENARIOS["verify"] = maintain
SCENARIOS["partial"] = partial  # issue 13: partial fetch of a big registry over HTTP
SCENARIOS["zstd"] = compressor  # issue 13: push and pull beside zstd and a sha256 pass
SCENARIOS["listing"] = listing  # issue 13: tags and images of a big registry, cold and warm


def _size_mib(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*(MiB|M|GiB|G)?", text.strip(), re.IGNORECASE)
    if not m or int(m[1]) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 1GiB)")
    return int(m[1]) * (1024 if (m[2] or "M").upper().startswith("G") else 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=sys.modules["tools.bench"].__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("scenarios", nargs="+", choices=list(SCENARIOS), metavar="SCENARIO", help=f"one or more of {', '.join(SCENARIOS)}")
    ap.add_argument("--workdir", default="/tmp/lfsreg-bench", help="image cache, registries, servers, logs (default %(default)s)")
    ap.add_argument("--lfsreg", default=f"{shlex.quote(sys.executable)} -m lfsreg", help="command that runs the lfsreg CLI")
    ap.add_argument("--lfsreg-rev", action="append", metavar="REV", help="also measure lfsreg of this commit, side by side (repeatable)")
    ap.add_argument("--size", type=_size_mib, default=1024, dest="size_mib", help="size of the generated image (default 1GiB)")
    ap.add_argument("--layers", type=int, default=5, choices=range(1, 7), help="layers of the generated image (default 5)")
    ap.add_argument("--ref", default="bench/big:1", help="name:tag of the image (default %(default)s)")
    ap.add_argument("--image", help="a docker-archive to use instead of the generated image (must hold --ref)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions; the report shows medians (default 1)")
    ap.add_argument("--no-verify", action="store_true", help="don't hash-check pulled archives")
    ap.add_argument("--keep", action="store_true", help="keep the registries and clones of the last repetition")
    ap.add_argument("--timeout", type=float, default=3600, help="per-command timeout, seconds (default 3600)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    for mod in SCENARIOS.values():
        mod.add_arguments(ap)
    a = ap.parse_args(argv)
    if a.reps < 1:
        ap.error("--reps must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    s = Session(a)
    s.meta["scenarios"] = a.scenarios
    mods = [SCENARIOS[name] for name in dict.fromkeys(a.scenarios)]
    interrupted = False
    try:
        s.prepare_lfsregs()
        for mod in mods:
            mod.run(s)
    except KeyboardInterrupt:
        interrupted = True
        s.r.log("interrupted: reporting what was measured")
    except RuntimeError as e:  # a revision or a peer that cannot be had: say so in the report
        s.r.fail(s.r.step("setup", "setup", "setup"), str(e))
    finally:
        s.stack.close()
        s.meta["loadavg_end"] = os.getloadavg()
        if not a.keep:
            rmtree(s.run_dir)
    checks = report.checks(s, [c for mod in mods for c in mod.checks(s)])
    text = report.render(s, [line for mod in mods for line in mod.report(s)], checks)
    print(text, flush=True)
    report.write(s, text, checks, a.json)
    return 130 if interrupted else 1 if s.r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
