"""``python3 tests/peers git-http|giftless|dulwich-lfs [WORKDIR]``: run one peer until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a directory: make tests/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import start_dulwich_lfs, start_giftless, start_git_http


def _main(argv: list[str]) -> int:
    """``python3 tests/peers git-http|giftless|dulwich-lfs [WORKDIR]``: run one until Ctrl-C."""
    kinds = ("git-http", "giftless", "dulwich-lfs")
    if not argv or argv[0] not in kinds:
        print(f"usage: python3 tests/peers {'|'.join(kinds)} [WORKDIR]", file=sys.stderr)
        return 2
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix=f"lfsreg-{argv[0]}-"))
    with contextlib.ExitStack() as stack:
        if argv[0] == "dulwich-lfs":
            server: object = stack.enter_context(start_dulwich_lfs(workdir))
        else:
            server = stack.enter_context(start_giftless(workdir / "giftless"))
            if argv[0] == "git-http":
                server = stack.enter_context(start_git_http(workdir / "git-http", lfs=server))
                print(f"example repo: {server.create_repo('org/example').auth_url}")
        print(server, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})  # blocked in __main__: Ctrl-C lands here
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(_main(sys.argv[1:]))
