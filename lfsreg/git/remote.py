"""A git remote reached through dulwich's clients, mirrored into a local bare repository.

Reads fetch the registry branch into the mirror (shallow on the first fetch, so a pull does
not download history); writes build commits in the mirror and push them with a
compare-and-swap: the push is accepted only if the remote's branch still points where it
pointed when the commit was built (receive-pack checks the old value atomically).

The registry branch is the one the remote's ``HEAD`` names, born or unborn (protocol v2
advertises an unborn ``HEAD``), else ``main`` (:func:`lfsreg.git.store.choose_branch`).
Several processes may share one mirror: its refs are hints that the last writer sets, and
its ``shallow`` file is merged under its lock. A push reports success exactly when the
remote's branch moved to the new commit, even when the answer to the push was lost.

A cut, reset, refused or stalled exchange is retried with the LFS transfer queue's policy
(:class:`lfsreg.lfs.retry.RetryPolicy`): a fetch is simply run again; a push is re-sent only
after the remote's branch was read again and still points where the push expects it (if it
points at the new commit, the lost push landed; elsewhere, another writer moved it and the
registry transaction re-applies). One loop (:meth:`GitRemote._call`) does both, the push through
its check-before-retry hook. Once the retries are spent the error is one line in lfsreg's
words, without the HTTP library's text. A ``file://`` remote is written by
:mod:`lfsreg.git.filepush`, not through dulwich.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

from dulwich.client import GitClient, HTTPUnauthorized, LocalGitClient
from dulwich.config import ConfigDict
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.refs import Ref

from ..credentials import Credential
from ..errors import (
    AuthenticationError,
    ConcurrentUpdateError,
    LfsregError,
    PermissionDeniedError,
    ProtocolError,
    RepositoryNotFound,
    RetriableError,
    UnreachableError,
    tls_error,
)
from ..lfs.retry import RetryPolicy
from . import locks, partial
from .filepush import local_git_dir, push_to_directory
from .objects import storage_error
from .reffiles import abandon_git_files
from .store import DEFAULT_BRANCH, GitStore, choose_branch
from .transport import DEFAULT_DEADLINE, HttpClient, HttpStatus, redact, spent, timed_out, transport_error, worth_retrying

log = logging.getLogger(__name__)
# The mirror's copy of the remote's registry branch, whatever the branch is called there.
MIRROR_REF = b"refs/remotes/origin/main"
HEAD = b"HEAD"
T = TypeVar("T")
_UNKNOWN = object()  # the remote's tip could not be read
_ALL = 0x7FFFFFFF  # the depth that makes a shallow repository whole (git fetch --unshallow)

PushRejectedError = PermissionDeniedError  # the name of earlier releases: a refused ref update
__all__ = ["AuthenticationError", "GitRemote", "PushRejectedError", "redact"]


class GitRemote:
    """The git side of a remote registry at ``url``, with a mirror under ``mirror_dir``.

    ``credentials`` are tried in order until the server accepts one (HTTP only); the working
    one is kept for later requests. Messages never contain a credential. ``client_factory``
    replaces dulwich's choice of client for the URL (SSH uses it: no ``ssh`` binary).
    ``timeout`` bounds connecting and each read of smart HTTP (seconds; ``None``: no bound),
    ``deadline`` each smart-HTTP request from start to last byte;
    ``policy`` says how often a cut or stalled exchange is tried again.
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
        timeout: float | None = None,
        deadline: float = DEFAULT_DEADLINE,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.deadline = deadline
        self.policy = policy or RetryPolicy()
        self._client_factory = client_factory  # e.g. SSH on paramiko (lfsreg.git.ssh); else from the URL
        self.label = label
        self._credentials: list[Credential | None] = [*credentials] or [None]
        self._secrets = [c.password for c in credentials]
        self._config = ConfigDict()
        if ca_bundle:
            self._config.set((b"http",), b"sslCAInfo", ca_bundle.encode())
        if not verify_tls:
            self._config.set((b"http",), b"sslVerify", b"false")
        if timeout:
            self._config.set((b"http",), b"timeout", str(timeout).encode())
        self._client: GitClient | None = None
        self._path = ""
        self._answered = False  # whether the server has answered this process once
        self.mirror = GitStore.open(mirror_dir, cache=True) if os.path.isdir(mirror_dir) else GitStore.init(mirror_dir, cache=True)
        self.branch = DEFAULT_BRANCH  # the remote's registry branch, known after the first fetch
        self._tip: str | None = None
        self._fetched = False  # whether _tip is the remote's tip as read in this process
        self._locked_since: float | None = None  # when the server first could not lock the branch
        self._local = client_factory is None and urlparse(url).scheme == "file"
        self._fetcher = partial.ObjectFetcher(self.mirror, self._call, local_git_dir(url) if self._local else None)
        self._told = False  # whether the server was said not to filter (once per command)
        self._how = partial.TipFetch()
        self._filled = False  # whether the whole tree was fetched after a fetch by id failed
        self.mirror.objects.fetch_missing = self._fetch_missing
        self.mirror.objects.fetch_optional = lambda ids: self._fetcher.fetch(ids, 0, optional=True)

    @property
    def credential(self) -> Credential | None:
        """The credential the server accepted (``None``: anonymous or not yet known)."""
        return self._credentials[0]

    def _new_client(self) -> tuple[GitClient, str]:
        if self._client_factory is not None:
            return self._client_factory()
        cred = self._credentials[0]
        username = cred.username if cred else None
        password = cred.password if cred else None
        parsed = urlparse(self.url)
        if parsed.scheme in ("http", "https"):
            client = cast(HttpClient, HttpClient.from_parsedurl(parsed, config=self._config, username=username, password=password))
            client.deadline = self.deadline
            return client, parsed.path
        # file:// (open_location names no other scheme without a client factory). dulwich would take
        # the path undecoded (``my%20reg.git``), and a plain path with a ``:`` for scp-like SSH:
        # give it the decoded path, to its local client.
        return LocalGitClient(config=self._config), unquote(parsed.path)

    def _call(
        self,
        op: Callable[[GitClient, str], T],
        *,
        retry: bool = True,
        before_retry: Callable[[LfsregError], T | None] | None = None,
    ) -> T:
        """Run ``op`` with a client; with ``retry``, again on a cut, refused or stalled exchange (:attr:`policy`).

        ``before_retry`` is asked first whenever an exchange failed: a result other than
        ``None`` ends the call with that result (the push's check of the remote's branch), and
        what it raises ends it too. A refused connection is retried only once the server has
        answered this process: refused at first contact is a wrong address or a server that is
        down, said at once (as git and docker do) rather than after the retries.
        Raises lfsreg's errors only (:meth:`_once`); the last one once the retries are spent.
        """
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                result = self._once(op)
                self._answered = True
                return result
            except (RetriableError, UnreachableError, ProtocolError) as exc:
                if before_retry is not None:
                    settled = before_retry(exc)
                    if settled is not None:
                        return settled
                refused = isinstance(exc, UnreachableError) and not isinstance(exc, RetriableError)
                if not retry or not worth_retrying(exc) or (refused and not self._answered):
                    raise
                attempt += 1
                wait = self.policy.next_wait(attempt, start, getattr(exc, "retry_after", None))
                if wait is None:
                    raise spent(exc, attempt) from None
                log.debug("%s; retry %d in %.2f s", exc, attempt, wait)
                self._client = None  # a fresh connection
                self.policy.sleep(wait)

    def _once(self, op: Callable[[GitClient, str], T]) -> T:
        """Run ``op`` with a client, moving to the next credential on 401; map failures to lfsreg's errors."""
        while True:
            if self._client is None:
                self._client, self._path = self._new_client()
            client = self._client
            try:
                return op(client, self._path)
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
                raise RepositoryNotFound(
                    f"{self.label}: repository not found", hint="check the URL, and that your credentials can read it"
                ) from None
            except LfsregError:
                raise
            except (HttpStatus, GitProtocolError, HangupException, ConnectionError, TimeoutError) as exc:
                stage = getattr(self._client, "stage", "the exchange")
                self._client = None  # its connection is in an unknown state
                # a deadline's shut-down socket may leave TLS errors behind: the stall is the news
                tls = None if timed_out(exc) else tls_error(exc, self.label, urlparse(self.url).netloc.rsplit("@", 1)[-1])
                raise (tls or transport_error(self.label, exc, self._secrets, stage, self.timeout)) from None
            except OSError as exc:  # this machine's side: the mirror's disk
                abandon_git_files(exc)  # dulwich's lock files and temporary packs in the mirror
                raise storage_error(exc, exc.filename or self.mirror.path) from None
            finally:
                if isinstance(client, HttpClient):
                    client.finish()

    def fetch_tip(self, *, retry: bool = True) -> str | None:
        """Fetch the registry branch into the mirror; return the remote's tip (``None`` if it has none).

        The fetch asks for the commits and their root trees only (:mod:`lfsreg.git.partial`);
        what lies below is fetched when read. A server that ignores the filter sends everything,
        as before (said once under ``-v``). With ``retry``, a cut or stalled exchange is tried
        again (:attr:`policy`).
        """
        mirror = self.mirror
        first = mirror.read_ref(MIRROR_REF) is None
        asked: list[ObjectID] = []

        def wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
            # HEAD's commit is the tip of the branch HEAD names; main's, of the registry's fallback.
            shas = [refs.get(Ref(HEAD)), refs.get(Ref(DEFAULT_BRANCH))]
            asked[:] = list(dict.fromkeys(s for s in shas if s and s != ZERO_SHA and s not in mirror))
            return [] if self._local else asked

        def fetch(client: GitClient, path: str) -> Any:
            with mirror.objects.pack_writes():
                return partial.fetch_filtered(client, path, mirror.repo, wants, 1 if first else None, self._how)

        result = self._call(fetch, retry=retry)
        born = {bytes(name): bytes(sha) for name, sha in (result.refs or {}).items() if sha and sha != ZERO_SHA}
        target = (result.symrefs or {}).get(Ref(HEAD))
        self.branch = choose_branch(bytes(target) if target else None, born)
        tip = born.get(self.branch)
        if tip is not None and tip not in mirror and not self._local:
            # HEAD named another branch than the one it points at (or moved between calls).
            def fetch_tip(client: GitClient, path: str) -> Any:
                with mirror.objects.pack_writes():
                    wanted = lambda refs, depth=None: [ObjectID(tip)]  # noqa: E731
                    return partial.fetch_filtered(client, path, mirror.repo, wanted, 1 if first else None, self._how)

            asked[:] = [ObjectID(tip)]
            self._call(fetch_tip, retry=retry)
        if tip is not None and self._local and tip not in mirror:
            self._fetcher.fetch([tip])  # a file:// remote: the commit, read from its directory (the rest when read)
            mirror.repo.update_shallow({ObjectID(tip)}, None)
            partial.set_partial(mirror, True)
        elif tip is not None:
            self._note_filtered(tip, bool(asked))
        self._tip = tip.decode() if tip else None
        self._fetched = True
        if self._tip is not None:
            mirror.note_ref(MIRROR_REF, self._tip)
        return self._tip

    def _note_filtered(self, tip: bytes, fetched: bool) -> None:
        """After a fetch of ``tip``: mark the mirror partial if the server filtered; say once if it did not."""
        if not fetched:
            return
        if partial.came_filtered(self.mirror, tip):
            partial.set_partial(self.mirror, True)
        elif not self._told:
            self._told = True
            log.info("%s: the server does not filter (no uploadpack.allowFilter or no protocol v2): fetched the whole tree", self.label)

    def _fetch_missing(self, ids: Sequence[bytes], below: int | None = 0) -> bool:
        """Fetch objects the mirror lacks by id; if the server cannot, the whole tree of the tip once.

        ``below=None`` (trees with everything under them) does nothing in a mirror that is whole.
        """
        if below is None and not partial.is_partial(self.mirror):
            return True
        if self._fetcher.fetch(ids, below):
            return True
        if self._tip is None or self._filled:
            return False
        self._filled = True
        self.complete(self._tip, history=False)
        return True

    def complete(self, tip: str, *, history: bool) -> None:
        """Fetch every object of ``tip`` (with ``history``, of its whole history) into the mirror, and mark it whole.

        No ``have`` is sent: a partial mirror holds commits without what they reference.
        """
        mirror = self.mirror
        was_partial = partial.is_partial(mirror)
        if not was_partial and not (history and mirror.shallow()):
            return

        def fetch(client: GitClient, path: str) -> None:
            with mirror.objects.pack_writes():
                partial.fetch_everything(client, path, mirror, tip.encode(), history=history)

        self._call(fetch)
        if was_partial and history:
            partial.set_partial(mirror, False)

    def deepen(self, tip: str) -> None:
        """Fetch the whole history behind ``tip`` into the mirror, with every object, if the mirror holds only part of it."""
        if partial.is_partial(self.mirror):
            self.complete(tip, history=True)
            return
        if not self.mirror.shallow():
            return

        def fetch(client: GitClient, path: str) -> Any:
            with self.mirror.objects.pack_writes():
                return client.fetch(path, self.mirror.repo, determine_wants=lambda refs, depth=None: [ObjectID(tip.encode())], depth=_ALL)

        self._call(fetch)

    def push(self, old: str | None, new: str) -> bool:
        """Move the remote's branch from ``old`` to ``new``; ``False`` if it had moved (or was locked).

        Returns ``True`` exactly when the branch now points at ``new``. If the exchange fails
        (cut, refused, stalled, or the answer lost), the branch is read again: at ``new``, the
        push landed; elsewhere than ``old``, another writer moved it (``False``: re-apply);
        still at ``old``, the push is sent again, with :attr:`policy`'s back-off. A re-sent push
        reads the branch once more in its own advertisement and updates nothing unless the
        branch is still at ``old``, so an update that lands late is never applied twice.
        """
        expected = old.encode() if old else None
        branch = Ref(self.branch)
        moved = landed = False

        def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            nonlocal moved, landed
            current = refs.get(branch)  # an empty repository advertises no branch (dulwich drops capabilities^{})
            if current == new.encode():
                landed = True  # an earlier attempt's update arrived after all
                return {}
            if current != expected:
                moved = True
                return {}
            return {branch: ObjectID(new.encode())}

        def generate(
            have: Set[ObjectID], want: Set[ObjectID], *, ofs_delta: bool = True, progress: Callable[[bytes], None] | None = None
        ) -> Any:
            # The commit and the trees and blobs it changed, found along the changed paths: the
            # server has ``old`` (the update is refused otherwise), so it has everything else.
            # Whole mirrors too: dulwich's generic search walked the remote's whole tree and every
            # entry of the mirror's pack (at 30,000 images over a server without filters: ~60 MB
            # more peak memory and seconds per push), for the same few objects.
            return partial.pack_data(self.mirror, old, new)

        said: list[bytes] = []  # receive-pack's messages (why a ref update failed, e.g. "cannot lock ref")

        def send(client: GitClient, path: str) -> Any:
            nonlocal moved, landed
            moved = landed = False
            return client.send_pack(path.encode(), update_refs, generate, progress=said.append)

        def recheck(exc: LfsregError) -> bool | None:
            # Before a push is sent again: where is the branch now?
            tip = self._tip_now()
            if tip == new:
                return self._pushed(new)  # the lost push landed
            if tip is not _UNKNOWN and tip != old:
                return False  # another writer moved the branch: the transaction re-applies
            return None  # still at the old commit (or unknown): send again, or give up

        git_dir = local_git_dir(self.url) if self._client_factory is None else None
        if git_dir is not None:
            if not push_to_directory(self.mirror, git_dir, self.branch, old, new, self.label):
                return False
            return self._pushed(new)
        result = self._call(send, before_retry=recheck)
        if isinstance(result, bool):  # settled by recheck
            return result
        if landed:
            return self._pushed(new)
        if moved:
            return False
        status = (result.ref_status or {}).get(branch)
        if status:
            # receive-pack words a lost race in several ways ("failed to update ref", "stale
            # info", "fetch first"…); whatever it said, if the branch moved it was a race.
            if self.fetch_tip() != old:
                return False
            text = redact(status, self._secrets)
            why = [line.strip() for line in b"".join(said).decode("utf-8", "replace").splitlines() if "lock" in line.lower()]
            if "lock" in text.lower() or why or text == "failed to update ref":
                # git's ref lock, held by another writer (or left by a killed one): try again
                return self._locked(redact(why[0], self._secrets) if why else text)
            raise PushRejectedError(f"{self.label}: the remote refused the update of {self.branch.decode()}: {text}")
        return self._pushed(new)

    def _pushed(self, new: str) -> bool:
        """Note that the remote's branch is at ``new`` now."""
        self._locked_since = None
        self._tip = new
        try:
            self.mirror.note_ref(MIRROR_REF, new)
        except OSError as exc:  # the push landed: a cache that cannot note it must not undo that
            log.debug("%s: could not note the new tip in the mirror: %s", self.label, exc)
        return True

    def _tip_now(self) -> object:
        """The remote's tip read once more (:data:`_UNKNOWN` if that fails too)."""
        try:
            return self.fetch_tip(retry=False)
        except LfsregError as exc:
            log.debug("%s: cannot read the branch after a failed push: %s", self.label, exc)
            return _UNKNOWN

    def _locked(self, server_text: str) -> bool:
        """The branch was locked by another writer: ``False`` (re-apply) until it stayed locked too long."""
        now = time.monotonic()
        self._locked_since = self._locked_since or now
        if now - self._locked_since > locks.LOCK_WAIT:
            raise ConcurrentUpdateError(
                f"{self.label}: {self.branch.decode()} stayed locked for {locks.LOCK_WAIT:.0f} s: {server_text}",
                hint=f"if no other push is running, remove the stale {self.branch.decode()}.lock in the server's repository",
            )
        return False
