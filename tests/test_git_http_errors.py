"""Smart-HTTP statuses become lfsreg's errors through ``error_for_status`` (issue 8, redesign 3).

A small HTTP server on 127.0.0.1 answers every git request with one status (as a git host
does when it is down, rate-limits, or refuses a token), so each mapping is seen end to end:
through the library (the exception's class, ``status`` and ``retry_after``) and the CLI (one
line, the right exit code, no traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from canned_http import canned_server
from conftest import run_cli

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import AuthenticationError, PermissionDeniedError, ProtocolError, RepositoryNotFound, RetriableError
from lfsreg.lfs.retry import RetryPolicy


@pytest.fixture
def answering() -> Iterator[Callable[..., str]]:
    """Start canned servers answering one status (with ``Retry-After``, or a Basic challenge on 401); their URLs."""
    with ExitStack() as servers:

        def start(status: int, retry_after: str | None = None) -> str:
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            if status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="git"'
            return servers.enter_context(canned_server(status, headers=headers)).url

        yield start


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "retriable"),
    [
        (503, "1", RetriableError, True),
        (429, None, RetriableError, True),
        (500, None, RetriableError, True),
        (403, None, PermissionDeniedError, False),
        (404, None, RepositoryNotFound, False),
        (401, None, AuthenticationError, False),
        (418, None, ProtocolError, False),
    ],
)
def test_smart_http_status_maps_to_the_error_tree(answering, status: int, retry_after: str | None, error: type, retriable: bool) -> None:
    url = answering(status, retry_after)
    # a retriable status is retried (lfsreg.git.remote); quickly here
    registry = lfsreg.Registry(url, options=RemoteOptions(policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)))
    try:
        with pytest.raises(error) as caught:
            registry.tags()
    finally:
        registry.close()
    if retriable:
        assert caught.value.status == status
        assert caught.value.retry_after == (float(retry_after) if retry_after else None)
    assert str(status) in str(caught.value) or status in (401, 404)

    proc = run_cli("tags", url, env={**os.environ, "LFSREG_RETRIES": "1"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("lfsreg: error:"), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
