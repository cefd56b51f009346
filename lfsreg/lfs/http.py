"""An LFS store behind the Git LFS HTTP API, with downloads kept in the local cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import requests
from requests.utils import get_environ_proxies

from ..credentials import Credential
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, no_progress
from .api import BatchClient, HeaderSource
from .cache import ObjectCache
from .queue import RetryPolicy, TransferQueue


@dataclass(frozen=True)
class HttpSettings:
    """How to talk HTTP: TLS, timeouts, concurrency, retries."""

    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout: float = 60.0
    jobs: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)


class _ProxySession(requests.Session):
    """A session that never reads ``~/.netrc`` by itself, but honours the proxy variables.

    Credentials must go only where lfsreg puts them (the batch API's host), never to a storage
    host an action points at; requests' own netrc lookup would send them anywhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        if "proxies" not in kwargs:
            kwargs["proxies"] = get_environ_proxies(str(url))
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


def make_session(settings: HttpSettings) -> requests.Session:
    """A requests session with TLS settings applied and identity content encoding."""
    session = _ProxySession()
    session.headers["User-Agent"] = "lfsreg"
    session.headers["Accept-Encoding"] = "identity"
    if not settings.verify_tls:
        session.verify = False
    elif settings.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE"):
        session.verify = settings.ca_bundle or os.environ["REQUESTS_CA_BUNDLE"]
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, settings.jobs * 2))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class HttpLfsStore:
    """:class:`lfsreg.lfs.store.LfsStore` over an LFS server: batch API, basic transfers, cache."""

    def __init__(
        self,
        endpoint: str,
        credentials: Sequence[Credential],
        cache: ObjectCache,
        settings: HttpSettings,
        *,
        ref: str | None = "refs/heads/main",
        header_source: HeaderSource | None = None,
    ) -> None:
        self.session = make_session(settings)
        self.client = BatchClient(endpoint, self.session, credentials, timeout=settings.timeout, header_source=header_source)
        self.queue = TransferQueue(self.client, self.session, jobs=settings.jobs, policy=settings.policy, timeout=settings.timeout, ref=ref)
        self.cache = cache
        self.label = self.client.label

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the server lacks (one upload batch per 100)."""
        return self.queue.missing(objects) if objects else []

    @contextlib.contextmanager
    def staging(self) -> Iterator[tuple[BinaryIO, str]]:
        """Stage in the cache, so an uploaded object is also cached."""
        with self.cache.staging() as staged:
            yield staged

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload what the server lacks, then keep every staged file in the cache."""
        if items:
            self.queue.upload(items, progress)
        for obj, staged in items:
            self.cache.adopt(obj, staged)

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Download the objects that are not validly cached."""
        todo = [o for o in objects if not self.cache.valid(o)]
        if todo:
            self.queue.download(todo, self.cache, progress)

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open the cached copy (call :meth:`fetch` first)."""
        return self.cache.open(obj, self.label)
