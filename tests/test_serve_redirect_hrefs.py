"""Which LFS download hrefs ``serve --redirect`` sends a client to (:class:`lfsreg.serve.redirect.Redirector`).

Only an href a client can fetch as it is: no action header (a token minted for lfsreg would be
lost, or leaked), no credentials in the URL (a ``Location`` is shown to every client and logged
by proxies), not about to expire, and only for an object the LFS server holds. The batch answers
come from an adapter of our own (the LFS server's side is :mod:`tests.test_s3_serve`, with giftless
and SeaweedFS), so each case is exact and takes milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from lfsreg.errors import RetriableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.batch import Action, BatchItem
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.queue import TransferQueue
from lfsreg.lfs.retry import RetryPolicy
from lfsreg.lfs.store import CachedLfsStore
from lfsreg.serve.redirect import KEEP, MARGIN, Redirector

OBJ = LfsObject(hashlib.sha256(b"layer").hexdigest(), 5)
PRESIGNED = "https://bucket.s3.example.com/lfs/" + OBJ.oid + "?X-Amz-Signature=abc&X-Amz-Expires=3600"


class Answers:
    """An LFS adapter answering each download batch with the next of ``answers`` (an item or an error)."""

    label = "test LFS"

    def __init__(self, *answers: BatchItem | Exception) -> None:
        self.answers = list(answers)
        self.asked = 0

    def batch(self, operation: str, objects: Sequence[LfsObject], ref: str | None) -> list[BatchItem]:
        assert operation == "download" and list(objects) == [OBJ]
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return [answer]

    def end(self) -> None:
        pass


def item(href: str = PRESIGNED, header: dict[str, str] | None = None, expires: float | None = None) -> BatchItem:
    return BatchItem(OBJ, {"download": Action(href, header or {}, expires)})


def redirector(tmp_path, adapter: Answers, clock: list[float]) -> Redirector:
    queue = TransferQueue(adapter, policy=RetryPolicy(max_retries=0))  # type: ignore[arg-type]
    return Redirector(CachedLfsStore(queue, ObjectCache(str(tmp_path / "cache"))), clock=lambda: clock[0])


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (item(header={"Authorization": "Bearer minted-for-lfsreg"}), "the href needs a header"),
        (item(href=f"https://user:pw@lfs.example.com/o/{OBJ.oid}"), "credentials in the URL"),
        (item(href=f"https://token@lfs.example.com/o/{OBJ.oid}"), "a user name in the URL"),
        (item(expires=1000.0 + MARGIN - 1), "expires within the margin"),
        (BatchItem(OBJ, {}, error=(404, "Object does not exist")), "the server does not hold it"),
    ],
)
def test_no_redirect(tmp_path, answer, why):
    assert redirector(tmp_path, Answers(answer), [1000.0]).location(OBJ) is None, why


def test_a_presigned_href_is_reused_until_shortly_before_it_expires(tmp_path):
    clock = [1000.0]
    adapter = Answers(item(expires=1000.0 + 200), item(href=PRESIGNED + "&second"))
    r = redirector(tmp_path, adapter, clock)
    assert r.location(OBJ) == PRESIGNED
    clock[0] += 200 - MARGIN - 1  # still more than MARGIN seconds left: no new batch call
    assert (r.location(OBJ), adapter.asked) == (PRESIGNED, 1)
    clock[0] += 2  # within MARGIN of its expiry: asked again
    assert (r.location(OBJ), adapter.asked) == (PRESIGNED + "&second", 2)
    clock[0] += KEEP - 1  # no expiry given: kept KEEP seconds
    assert adapter.asked == 2 and r.location(OBJ) == PRESIGNED + "&second"
    clock[0] += 2
    r.location(OBJ)
    assert adapter.asked == 3


def test_a_failed_batch_streams_now_and_asks_again_soon(tmp_path):
    clock = [1000.0]
    adapter = Answers(RetriableError("busy", status=503), item())
    r = redirector(tmp_path, adapter, clock)
    assert r.location(OBJ) is None
    clock[0] += 6
    assert r.location(OBJ) == PRESIGNED and adapter.asked == 2
