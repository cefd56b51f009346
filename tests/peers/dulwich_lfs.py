"""``dulwich.lfs_server``: no auth, one flat store (``store/objects/aa/bb/<oid>``) for every repo.

PYTEST_DONT_REWRITE

Missing objects are 200 + per-object 404; every object is held in memory (keep them small).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peers.probes import batch_answers
from peers.procs import HOST, Proc, started

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class DulwichLfsServer:
    """``dulwich.lfs_server`` (no auth); its LFS endpoint is ``url`` itself."""

    url: str
    port: int
    store: Path  # objects in store/objects/aa/bb/<oid>, one store for every repo
    log: Path

    @property
    def lfs_url(self) -> str:
        return self.url

    def object_path(self, oid: str) -> Path:
        return self.store / "objects" / oid[:2] / oid[2:4] / oid


_DULWICH_LFS_MAIN = """\
import sys
from dulwich.lfs_server import run_lfs_server
server, url = run_lfs_server(host=sys.argv[1], port=int(sys.argv[2]), lfs_dir=sys.argv[3], log_requests=True)
print("serving", url, flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def start_dulwich_lfs(workdir: Path, python: str = sys.executable) -> Iterator[DulwichLfsServer]:
    """``dulwich.lfs_server`` (dulwich from the test interpreter) on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "lfs-store"
    store.mkdir(exist_ok=True)
    log = workdir / "dulwich-lfs.log"

    def start(port: int) -> tuple[list[Proc], Path]:
        return [Proc([python, "-u", "-c", _DULWICH_LFS_MAIN, HOST, str(port), str(store)], log, cwd=workdir)], log

    def healthy(port: int) -> bool:  # a missing object: 200 with a per-object 404
        return batch_answers(f"http://{HOST}:{port}/objects/batch", "download")

    port, procs = started(start, healthy, "dulwich.lfs_server")
    try:
        yield DulwichLfsServer(url=f"http://{HOST}:{port}", port=port, store=store, log=log)
    finally:
        for p in procs:
            p.stop()
