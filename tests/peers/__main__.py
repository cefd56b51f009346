"""``python3 tests/peers KIND [WORKDIR]``: run one peer until Ctrl-C (no KIND: list them)."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from pathlib import Path

# run as a directory (python3 tests/peers) or as a module (python -m tests.peers): the peers are
# imported as the test suite imports them, as the top-level package ``peers`` from tests/
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import start_distribution, start_dulwich_lfs, start_giftless, start_git_http, start_seaweedfs
from peers.goclients import go_pins, go_tool_path


def _main(argv: list[str]) -> int:
    """``python3 tests/peers KIND [WORKDIR]``: run one until Ctrl-C; ``go-tools``: where the Go clients are."""
    kinds = ("git-http", "git-http-s3", "giftless", "seaweedfs", "dulwich-lfs")
    kinds += ("registry", "registry-htpasswd", "registry-token", "go-tools")
    if not argv or argv[0] not in kinds:
        print(f"usage: python3 tests/peers {'|'.join(kinds)} [WORKDIR]", file=sys.stderr)
        return 2
    if argv[0] == "go-tools":
        for name, (package, version) in go_pins().items():
            path = go_tool_path(name)
            print(f"{name:12} {package}@{version}  {path}{'' if path.is_file() else '  (missing)'}")
        return 0 if all(go_tool_path(n).is_file() for n in go_pins()) else 1
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix=f"lfsreg-{argv[0]}-"))
    with contextlib.ExitStack() as stack:
        if argv[0] == "dulwich-lfs":
            server: object = stack.enter_context(start_dulwich_lfs(workdir))
        elif argv[0].startswith("registry"):
            auth = argv[0].partition("-")[2] or "none"
            server = stack.enter_context(start_distribution(workdir / argv[0], auth))
        elif argv[0] == "seaweedfs":
            server = stack.enter_context(start_seaweedfs(workdir / "seaweedfs"))
        else:
            s3 = stack.enter_context(start_seaweedfs(workdir / "seaweedfs")) if argv[0] == "git-http-s3" else None
            if s3 is not None:
                print(s3, flush=True)
            server = stack.enter_context(start_giftless(workdir / "giftless", s3=s3))
            if argv[0].startswith("git-http"):
                server = stack.enter_context(start_git_http(workdir / "git-http", lfs=server))
                print(f"example repo: {server.create_repo('org/example').auth_url}")
        print(server, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})  # blocked in __main__: Ctrl-C lands here
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(_main(sys.argv[1:]))
