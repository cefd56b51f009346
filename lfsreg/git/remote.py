"""A git remote reached through dulwich's clients, mirrored into a local bare repository.

Reads fetch the remote's ``main`` into the mirror (shallow on the first fetch, so a pull does
not download history); writes build commits in the mirror and push them with a
compare-and-swap on ``main``: the push is accepted only if the remote still points where it
pointed when the commit was built (receive-pack checks the old value atomically).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dulwich.client import GitClient, HTTPUnauthorized, get_transport_and_path
from dulwich.config import ConfigDict, ConfigFile
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.repo import Repo

from ..credentials import Credential
from ..errors import LfsregError, NotFoundError
from .store import BRANCH, GitStore

log = logging.getLogger(__name__)
MIRROR_REF = b"refs/remotes/origin/main"
T = TypeVar("T")


class PushRejectedError(LfsregError):
    """The remote refused the ref update for a reason other than a moved branch."""


class AuthenticationError(LfsregError):
    """Every credential source was refused by the git server."""


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def lfs_url_from_lfsconfig(data: bytes) -> str | None:
    """``lfs.url`` (or ``remote.origin.lfsurl``) from a ``.lfsconfig`` file's content."""
    try:
        config = ConfigFile.from_file(io.BytesIO(data))
        for section, key in (((b"lfs",), b"url"), ((b"remote", b"origin"), b"lfsurl")):
            try:
                return config.get(section, key).decode()
            except KeyError:
                continue
    except (ValueError, UnicodeDecodeError):
        return None
    return None


class GitRemote:
    """The git side of a remote registry at ``url``, with a mirror under ``mirror_dir``.

    ``credentials`` are tried in order until the server accepts one (HTTP only); the working
    one is kept for later requests. Messages never contain a credential. ``client_factory``
    replaces dulwich's choice of client for the URL (SSH uses it: no ``ssh`` binary).
    """

    def __init__(
        self,
        url: str,
        mirror_dir: str,
        label: str,
        *,
        credentials: Sequence[Credential] = (),
        ca_bundle: str | None = None,
        verify_tls: bool = True,
        client_factory: Callable[[], tuple[GitClient, str]] | None = None,
    ) -> None:
        self.url = url
        self._client_factory = client_factory  # e.g. SSH on paramiko (lfsreg.git.ssh); else from the URL
        self.label = label
        self._credentials: list[Credential | None] = [*credentials] or [None]
        self._secrets = [c.password for c in credentials]
        self._config = ConfigDict()
        if ca_bundle:
            self._config.set((b"http",), b"sslCAInfo", ca_bundle.encode())
        if not verify_tls:
            self._config.set((b"http",), b"sslVerify", b"false")
        self._client: GitClient | None = None
        self._path = ""
        self.mirror = GitStore.open(mirror_dir) if os.path.isdir(mirror_dir) else GitStore.init(mirror_dir)
        self._repo: Repo = self.mirror._repo

    @property
    def credential(self) -> Credential | None:
        """The credential the server accepted (``None``: anonymous or not yet known)."""
        return self._credentials[0]

    def _call(self, op: Callable[[GitClient, str], T]) -> T:
        """Run ``op`` with a client, moving to the next credential on 401."""
        while True:
            if self._client is None and self._client_factory is not None:
                self._client, self._path = self._client_factory()
            elif self._client is None:
                cred = self._credentials[0]
                self._client, self._path = get_transport_and_path(
                    self.url,
                    config=self._config,
                    username=cred.username if cred else None,
                    password=cred.password if cred else None,
                )
            try:
                return op(self._client, self._path)
            except HTTPUnauthorized:
                if len(self._credentials) > 1:
                    log.debug(
                        "%s: credentials from %s refused; trying the next source",
                        self.label,
                        self._credentials[0].source if self._credentials[0] else "nowhere",
                    )
                    self._credentials.pop(0)
                    self._client = None
                    continue
                raise AuthenticationError(
                    f"{self.label}: authentication failed",
                    hint="set LFSREG_USERNAME and LFSREG_PASSWORD (or LFSREG_TOKEN), put them in the URL, or add the host to ~/.netrc",
                ) from None
            except NotGitRepository:
                raise NotFoundError(
                    f"{self.label}: repository not found", hint="check the URL, and that your credentials can read it"
                ) from None
            except (GitProtocolError, HangupException, OSError) as exc:
                text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self._secrets)
                raise LfsregError(f"{self.label}: git transport failed: {text}") from None

    def fetch_tip(self) -> str | None:
        """Fetch ``main`` into the mirror; return the remote's tip (``None`` if it has none)."""
        seen: dict[str, bytes | None] = {}
        store = self._repo.object_store
        first = MIRROR_REF not in self._repo.refs

        def wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            tip = refs.get(BRANCH)
            seen["tip"] = tip
            return [] if tip is None or tip == ZERO_SHA or tip in store else [tip]

        def fetch(client: GitClient, path: str) -> Any:
            return client.fetch(path, self._repo, determine_wants=wants, depth=1 if first else None)  # type: ignore[arg-type]

        self._call(fetch)
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

        result = self._call(lambda client, path: client.send_pack(path, update_refs, generate))  # type: ignore[arg-type]
        if moved:
            return False
        status = (result.ref_status or {}).get(BRANCH)
        if status:
            # receive-pack words a lost race in several ways ("failed to update ref", "stale
            # info", "fetch first"…); whatever it said, if the branch moved it was a race.
            if self.fetch_tip() != old:
                return False
            raise PushRejectedError(f"{self.label}: the remote refused the update of main: {redact(status, self._secrets)}")
        self._repo.refs[MIRROR_REF] = new.encode()
        return True

    def lfs_url(self) -> str | None:
        """``lfs.url`` from the ``.lfsconfig`` at the fetched tip, if the registry has one."""
        try:
            tip = self._repo.refs[MIRROR_REF].decode()
        except KeyError:
            return None
        data = self.mirror.snapshot(tip).read(".lfsconfig")
        return lfs_url_from_lfsconfig(data) if data else None
