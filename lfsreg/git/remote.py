"""A git remote reached through dulwich's clients, mirrored into a local bare repository.

Reads fetch the remote's ``main`` into the mirror (shallow on the first fetch, so a pull does
not download history); writes build commits in the mirror and push them with a
compare-and-swap on ``main``: the push is accepted only if the remote still points where it
pointed when the commit was built (receive-pack checks the old value atomically).
"""

from __future__ import annotations

import logging
import os

from dulwich.client import get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.repo import Repo

from ..errors import LfsregError, NotFoundError
from .store import BRANCH, GitStore

log = logging.getLogger(__name__)
MIRROR_REF = b"refs/remotes/origin/main"


class PushRejectedError(LfsregError):
    """The remote refused the ref update for a reason other than a moved branch."""


class GitRemote:
    """The git side of a remote registry at ``url``, with a mirror under ``mirror_dir``."""

    def __init__(self, url: str, mirror_dir: str, label: str) -> None:
        self.url = url
        self.label = label
        self._client, self._path = get_transport_and_path(url)
        if os.path.isdir(mirror_dir):
            self.mirror = GitStore.open(mirror_dir)
        else:
            self.mirror = GitStore.init(mirror_dir)
        self._repo: Repo = self.mirror._repo

    def fetch_tip(self) -> str | None:
        """Fetch ``main`` into the mirror; return the remote's tip (``None`` if it has none)."""
        seen: dict[str, bytes | None] = {}
        store = self._repo.object_store
        first = MIRROR_REF not in self._repo.refs

        def wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            tip = refs.get(BRANCH)
            seen["tip"] = tip
            return [] if tip is None or tip == ZERO_SHA or tip in store else [tip]

        try:
            self._client.fetch(self._path, self._repo, determine_wants=wants, depth=1 if first else None)  # type: ignore[arg-type]
        except (GitProtocolError, HangupException) as exc:
            raise _remote_error(self.label, exc) from exc
        tip = seen.get("tip")
        if tip is None or tip == ZERO_SHA:
            return None
        self._repo.refs[MIRROR_REF] = tip
        return tip.decode()

    def push(self, old: str | None, new: str) -> bool:
        """Move the remote's ``main`` from ``old`` to ``new``; ``False`` if it had moved."""
        expected = old.encode() if old else None
        moved = False

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            nonlocal moved
            current = refs.get(BRANCH)
            if current == ZERO_SHA:
                current = None
            if current != expected:
                moved = True
                return {}
            return {BRANCH: new.encode()}

        def generate(have: list[ObjectID], want: list[ObjectID], *, ofs_delta: bool = True, progress: object = None) -> object:
            store = self._repo.object_store
            # A shallow mirror lacks history below its boundary: stop the walk there.
            shallow = self._repo.get_shallow()
            return store.generate_pack_data([h for h in have if h in store], want, shallow=shallow, ofs_delta=ofs_delta)

        try:
            result = self._client.send_pack(self._path, update_refs, generate)  # type: ignore[arg-type]
        except (GitProtocolError, HangupException) as exc:
            raise _remote_error(self.label, exc) from exc
        if moved:
            return False
        status = (result.ref_status or {}).get(BRANCH)
        if status:
            if any(word in status for word in ("non-fast-forward", "fetch first", "stale info", "failed to lock", "cannot lock")):
                return False
            raise PushRejectedError(f"{self.label}: the remote refused the update of main: {status}")
        self._repo.refs[MIRROR_REF] = new.encode()
        return True


def _remote_error(label: str, exc: Exception) -> LfsregError:
    text = str(exc)
    if "not found" in text.lower() or "does not appear to be a git repository" in text.lower():
        return NotFoundError(f"{label}: repository not found", hint="check the URL, and that your credentials can read it")
    return LfsregError(f"{label}: git transport failed: {text.splitlines()[0] if text else type(exc).__name__}")
