"""An LFS store behind the Git LFS HTTP API (batch API + basic transfers through the queue), cached locally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import requests
from requests.utils import get_environ_proxies

from ..credentials import Credential
from .batch import BatchClient, HeaderSource
from .cache import ObjectCache
from .queue import TransferQueue
from .retry import RetryPolicy
from .store import CachedLfsStore
from .transfer import BasicAdapter


@dataclass(frozen=True)
class HttpSettings:
    """How to talk HTTP: TLS, timeouts, concurrency, retries.

    Attributes:
        timeout: seconds a single socket read may wait.
        deadline: seconds an API request (batch, verify) may take from start to last byte; a
            transfer may take this plus its size at ``min_rate``. Past it the request counts
            as stalled, a retriable failure.
        min_rate: bytes per second the transfer deadline allows for.
    """

    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout: float = 60.0
    deadline: float = 300.0
    min_rate: float = 16 << 10
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

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:
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
    elif settings.ca_bundle:  # RemoteOptions.resolve read LFSREG_CA_BUNDLE / REQUESTS_CA_BUNDLE for git and LFS alike
        session.verify = settings.ca_bundle
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, settings.jobs * 2))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def http_queue(
    endpoint: str,
    credentials: Sequence[Credential],
    settings: HttpSettings,
    *,
    ref: str | None = "refs/heads/main",
    header_source: HeaderSource | None = None,
) -> TransferQueue:
    """The transfer queue for an LFS server's batch API at ``endpoint``, with basic transfers."""
    session = make_session(settings)
    client = BatchClient(endpoint, session, credentials, timeout=settings.timeout, deadline=settings.deadline, header_source=header_source)
    adapter = BasicAdapter(client, session, timeout=settings.timeout, deadline=settings.deadline, min_rate=settings.min_rate)
    return TransferQueue(adapter, jobs=settings.jobs, policy=settings.policy, ref=ref)


class HttpLfsStore(CachedLfsStore):
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
        self.queue = http_queue(endpoint, credentials, settings, ref=ref, header_source=header_source)
        super().__init__(self.queue, cache)
