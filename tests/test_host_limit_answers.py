"""A host's over-quota or over-size answer is one line naming the limit (lfsreg/errors.py ``error_for_status``).

The answers are the ones hosts document: GitHub's batch API answers ``403 {"message": "This
repository is over its data quota. ..."}`` once the LFS storage or bandwidth is used up, and
refuses an object over its per-object limit with a ``422`` object error ("Size must be less
than or equal to ..."); the batch API spec has ``413`` and ``507``. They are sent by the fault
server (tests/fault_lfs/), the HTTP stack and the CLI are lfsreg's own.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from conftest import assert_error, fixture, run_cli, snapshot
from fault_lfs import Fault, FaultLfsServer

from lfsreg.errors import LimitExceededError, PermissionDeniedError, ProtocolError, error_for_status
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy

GITHUB_QUOTA = (
    "This repository is over its data quota. Account responsible for LFS bandwidth should purchase more data packs to restore access."
)
DATA = os.urandom(5000)
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
POLICY = RetryPolicy(max_retries=1, sleep=lambda s: None)


@pytest.fixture
def server():
    with FaultLfsServer() as srv:
        yield srv


def _store(server, tmp_path):
    return HttpLfsStore(server.endpoint(), [], ObjectCache(str(tmp_path / "cache")), HttpSettings(policy=POLICY, timeout=10))


def test_github_over_quota_on_the_batch_call(server, tmp_path):
    server.script_batch([Fault.status(403, message=GITHUB_QUOTA)])
    with pytest.raises(LimitExceededError) as info:
        _store(server, tmp_path).missing([OBJ])
    text = str(info.value)
    assert "\n" not in text and "over its data quota" in text and "LFS quota is used up" in text
    assert "lfsreg du" in (info.value.hint or "")
    assert isinstance(info.value, PermissionDeniedError)  # callers catching 403s still catch it


def test_an_object_over_the_hosts_size_limit(server, tmp_path):
    server.script(OBJ.oid, "batch", [Fault.object_error(422, "Size must be less than or equal to 2147483648")])
    store = _store(server, tmp_path)
    with store.staging() as (f, path):
        f.write(DATA)
    with pytest.raises(LimitExceededError) as info:
        store.upload([(OBJ, path)])
    assert "larger than the host accepts" in str(info.value) and "limits.object" in (info.value.hint or "")


def test_413_on_the_upload_itself(server, tmp_path):
    server.script(OBJ.oid, "upload", [Fault.status(413, message="Request Entity Too Large")])
    store = _store(server, tmp_path)
    with store.staging() as (f, path):
        f.write(DATA)
    with pytest.raises(LimitExceededError, match="larger than the host accepts"):
        store.upload([(OBJ, path)])


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (403, "Forbidden", PermissionDeniedError),
        (403, "API rate limit exceeded for user", PermissionDeniedError),
        (507, "Insufficient Storage", LimitExceededError),
        (422, "Validation failed", ProtocolError),
        (422, "repository storage limit reached", LimitExceededError),
    ],
)
def test_which_answers_name_a_limit(status, message, kind):
    err = error_for_status(status, f"LFS batch: HTTP {status}: {message}")
    assert type(err) is kind


@pytest.mark.interop
def test_the_cli_says_it_in_one_line_and_writes_nothing(server, git_http_server, git_http_repo, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_")):
            monkeypatch.delenv(name)
    env = {
        **os.environ,
        "LFSREG_USERNAME": git_http_server.user,
        "LFSREG_PASSWORD": git_http_server.password,
        "LFSREG_CACHE": str(tmp_path / "cache"),
        "LFSREG_LFS_URL": server.endpoint(),
    }
    server.script_batch([Fault.status(403, message=GITHUB_QUOTA)] * 5)
    before = snapshot(git_http_repo.path)
    proc = run_cli("push", git_http_repo.url, "docker-archive:" + str(fixture("app.docker.tar")), env=env)
    assert_error(proc, 1, "over its data quota", "LFS quota is used up")
    assert snapshot(git_http_repo.path) == before
