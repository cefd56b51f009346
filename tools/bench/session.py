"""What every scenario of one benchmark run shares: options, the runner, the lfsreg revisions, the image."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from tools.bench import image, revs
from tools.bench.runner import Run, Runner, Step, rmtree, tool_version


class Session:
    """One run: ``r`` measures, ``lfsregs`` are the revisions side by side, ``data`` goes into the JSON."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.work = Path(args.workdir).resolve()
        self.r = Runner(self.work / "logs" / time.strftime("%Y%m%d-%H%M%S"), args.timeout)
        self.run_dir = self.work / "run"
        self.env = self._git_env(self.work / "home")
        self.lfsregs: list[revs.Lfsreg] = []
        self.stack = contextlib.ExitStack()  # servers and engines, stopped when the run ends
        self.peers: dict[str, Any] = {}  # servers started once for several scenarios
        self.data: dict[str, Any] = {}  # scenario name -> what it measured besides the steps
        self.meta: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
            "versions": {k: tool_version(v) for k, v in {"git": ["git", "--version"], "git-lfs": ["git", "lfs", "version"]}.items()},
        }
        self._image: tuple[Path, image.ArchiveImage] | None = None

    # -- environment ------------------------------------------------------------------------------
    def _git_env(self, home: Path, *extra_config: tuple[str, str]) -> dict[str, str]:
        """The caller's environment with an isolated git: its own HOME and global config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "LFSREG_")) and k != "DOCKER_HOST"}
        if "PYENV_ROOT" not in env and (Path.home() / ".pyenv").is_dir():
            env["PYENV_ROOT"] = str(Path.home() / ".pyenv")  # pyenv shims find their root through HOME
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
        home.mkdir(parents=True, exist_ok=True)
        config = [("user.name", "lfsreg bench"), ("user.email", "bench@lfsreg.invalid"), ("init.defaultBranch", "main"), *extra_config]
        for key, value in config:
            subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
        subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, capture_output=True)
        return env

    def git_env(self, name: str, *extra_config: tuple[str, str]) -> dict[str, str]:
        """A further isolated git environment (e.g. with a credential helper)."""
        home = self.run_dir / f"home-{name}"
        rmtree(home)
        return self._git_env(home, *extra_config)

    def prepare_lfsregs(self) -> None:
        self.lfsregs = revs.prepare(self.a.lfsreg, self.a.lfsreg_rev or [], self.run_dir / "revs")
        for lr in self.lfsregs:
            self.meta["versions"][f"lfsreg {lr.name}"] = tool_version(lr.cmd("--version"), lr.env(self.env))
        self.meta["lfsregs"] = [{"name": lr.name, "commit": lr.commit, "source": str(lr.source)} for lr in self.lfsregs]

    def in_turn(self, rep: int) -> list[revs.Lfsreg]:
        """The revisions in the order of repetition ``rep``: rotated, so that none always goes first."""
        k = rep % len(self.lfsregs)
        return self.lfsregs[k:] + self.lfsregs[:k]

    # -- steps --------------------------------------------------------------------------------------
    def lfsreg_step(self, key: str, label: str, group: str, lr: revs.Lfsreg, *, lfsreg: bool = True, **kw: Any) -> Step:
        """The step ``key`` of revision ``lr`` (key ``KEY@NAME``, the name in the label when there are several).

        ``lfsreg`` tells whether it is one lfsreg command (not a sum, a check or another tool's command).
        """
        suffix = f" [{lr.name}]" if len(self.lfsregs) > 1 else ""
        return self.r.step(f"{key}@{lr.name}", label + suffix, group, rev=lr.name, lfsreg=lfsreg, **kw)

    def seconds(self, key: str) -> float | None:
        step = self.r.steps.get(key)
        return step.seconds if step is not None else None

    def verify(self, step: Step, pulled: Path, *, hash_layers: bool = True) -> None:
        """Check (untimed) that a pulled docker-archive holds the pushed image; record it on ``step``."""
        if self.a.no_verify:
            step.skipped = "--no-verify"
            return
        t0 = time.monotonic()
        err = image.verify_pull(pulled, self.a.ref, self.image()[1], hash_layers=hash_layers)
        if err:
            self.r.fail(step, err)
        else:
            step.runs.append(Run(time.monotonic() - t0))

    # -- the big image ------------------------------------------------------------------------------
    def image(self) -> tuple[Path, image.ArchiveImage]:
        """The big image (``--image``, or generated and cached) and what it holds; its pages warmed."""
        if self._image is None:
            a = self.a
            t0 = time.monotonic()
            path = Path(a.image).resolve() if a.image else image.big_image(self.work, a.size_mib, a.layers, a.ref, self.r.log)
            info = image.find(path, a.ref)
            with open(path, "rb") as f:  # warm the page cache once (untimed): every step starts alike
                while f.read(8 << 20):
                    pass
            self._image = path, info
            self.meta["image"] = {"path": str(path), "bytes": path.stat().st_size, "ref": a.ref, "layers": len(info.diff_ids)}
            self.r.log(f"image {path} ({path.stat().st_size / 1048576:.1f} MiB, ready in {time.monotonic() - t0:.1f} s)")
        return self._image

    @property
    def image_bytes(self) -> int:
        return int(self.meta.get("image", {}).get("bytes", 0))
