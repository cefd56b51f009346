"""A smart-HTTP status that asks to come back later is retried by lfsreg's loop alone.

urllib3 (inside dulwich) honours ``Retry-After`` on 413/429/503 by itself: it retried such an
answer 3 times, sleeping each time, within every one of lfsreg's own attempts, so a host asking
for 60 s was waited 4 x 60 s per attempt. The canned server counts the requests it answers.
"""

from __future__ import annotations

import pytest
from canned_http import canned_server

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import RetriableError
from lfsreg.lfs.retry import RetryPolicy


@pytest.mark.parametrize("status", [503, 429])
def test_a_retry_after_answer_costs_one_request_per_lfsreg_attempt(status: int) -> None:
    with canned_server(status, b"", headers={"Retry-After": "0"}) as served:
        registry = lfsreg.Registry(served.url, options=RemoteOptions(policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)))
        try:
            with pytest.raises(RetriableError) as caught:
                registry.tags()
        finally:
            registry.close()
    assert caught.value.status == status
    assert len(served.paths) == 3, served.paths  # 1 + max_retries, each one request
