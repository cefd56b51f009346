"""podman pushes busybox into ``lfsreg serve``; a podman with empty storage pulls it back and runs it."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import bcrypt
from peers.engine import podman_storage

import lfsreg
from tests.gitenv import require_tool
from tests.servehelp import busybox_oci, free_env, serving


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def test_podman_push_then_pull_and_run(tmp_path: Path) -> None:
    podman, runc = require_tool("podman"), require_tool("runc")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("pusher:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    path = tmp_path / "reg.git"
    with lfsreg.Registry(str(path)) as reg:
        reg.init()
    # podman names an image pulled from oci:PATH after PATH, which must be a valid reference: lowercase (the
    # test's tmp may not be) and no component ending in "_" (mkdtemp's random part may: failed once as
    # 'invalid reference format' for /tmp/lfsreg-sp-fletowk_), so the name is hex digits
    lower = Path("/tmp") / f"lfsreg-sp-{uuid.uuid4().hex[:12]}"
    lower.mkdir()
    layout = busybox_oci(lower / "busybox.oci")
    env = free_env(tmp_path)
    stores = []
    for side in ("pusher", "puller"):
        store = podman_storage(tmp_path / side, f"/tmp/lfsreg-sp-{side}-{tmp_path.name[-12:]}")
        stores.append(store)
    pusher, puller = stores
    try:
        with serving(path, htpasswd=str(htpasswd)) as srv:
            image = f"{srv.url.removeprefix('http://')}/test/busybox:pushed"
            run([podman, *pusher, "pull", f"oci:{layout}:1"], env)
            (image_id,) = run([podman, *pusher, "images", "-q"], env).stdout.split()
            run([podman, *pusher, "tag", image_id, image], env)
            run([podman, *pusher, "push", "--tls-verify=false", "--creds", "pusher:secret", image], env)
            run([podman, *puller, "pull", "--tls-verify=false", "--creds", "pusher:secret", image], env)
            argv = [podman, *puller, "--runtime", runc, "--cgroup-manager", "cgroupfs", "run", "--rm", "--network", "none"]
            argv += ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", image, "/bin/sh", "-c", "echo pushed and run"]
            assert run(argv, env).stdout.strip() == "pushed and run"
    finally:
        shutil.rmtree(lower, ignore_errors=True)
        for store in stores:
            subprocess.run([podman, *store, "rmi", "-af"], env=env, capture_output=True, timeout=120, check=False)
            subprocess.run([podman, *store, "system", "reset", "-f"], env=env, capture_output=True, timeout=120, check=False)
    with lfsreg.Registry(str(path)) as reg:
        assert [t.tag for t in reg.tags("test/busybox")] == ["pushed"]
