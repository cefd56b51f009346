"""Many processes of one user fetching into one cache at once (issue 8, defect 3).

They share the cache's mirror of the remote, so each writes the same pack (same objects, same
name) into ``objects/pack``: dulwich then meets another process's ``.idx.lock`` (FileLocked) or
reads an index that is still being written (ChecksumMismatch). Seen once in the suite as an
``internal error``; provoked here by starting the readers together on an empty cache (the soak
form), and forced once deterministically in test_shared_mirror_locks (a fetch meets the pack
lock another holds, and waits).
"""

from __future__ import annotations

from pathlib import Path

from conftest import assert_ok
from gitenv import cli_env
from imageverify import FIXTURES, lfsreg
from test_concurrency import run_concurrently

READERS = 6
ROUNDS = 2


def test_readers_sharing_an_empty_cache_all_succeed(tmp_path: Path) -> None:
    repo = tmp_path / "remote.git"
    lfsreg("init", repo)
    for i, source in enumerate([f"oci:{FIXTURES / 'app.oci'}:1.0", f"oci:{FIXTURES / 'tool.oci'}:2.0"]):
        lfsreg("push", repo, source, "--tag", f"acme/x:{i}")
    env = cli_env(tmp_path, SLOW_GIT_LOCKS="0.05")  # a slow disk: the index of a pack stays locked longer (see test_concurrency)
    for round_ in range(ROUNDS):
        env["LFSREG_CACHE"] = str(tmp_path / f"cache{round_}")  # empty: every reader fetches the pack
        results = run_concurrently(tmp_path / f"r{round_}", [["tags", f"file://{repo}", "acme/x"]] * READERS, env=env)
        for proc in results:
            assert_ok(proc)
            assert "acme/x" in proc.stdout and "1" in proc.stdout, proc.stdout
