"""How many requests a command costs a remote: each is a round trip to a real host (GitHub is
tens of milliseconds away), so the count is part of the contract, measured in nginx's log."""

from __future__ import annotations

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env

pytestmark = pytest.mark.interop


def _requests(server, repo, since: int) -> list[str]:
    """The request lines (method and path) nginx logged for ``repo`` after byte ``since``."""
    with open(server.access_log, "rb") as f:
        f.seek(since)
        lines = f.read().decode().splitlines()
    name = repo.url.rstrip("/").rsplit("/", 1)[-1]
    return [line.split('"')[1] for line in lines if f"/{name}/" in line and '"' in line]


@pytest.mark.parametrize("image", ["app.docker.tar"])
def test_a_push_reads_the_remote_tip_once(git_http_server, git_http_repo, tmp_path, image):
    env = cli_env(tmp_path, git_http_server)
    source = "docker-archive:" + str(fixture(image))
    assert_ok(run_cli("push", git_http_repo.url, source, env=env))
    for attempt in ("repeat", "new tag"):
        start = git_http_server.access_log.stat().st_size
        extra = ["--tag", "acme/app:other"] if attempt == "new tag" else []
        assert_ok(run_cli("push", git_http_repo.url, source, *extra, env=env))
        sent = _requests(git_http_server, git_http_repo, start)
        adverts = [r for r in sent if "info/refs?service=git-upload-pack" in r]
        # one fetch of the tip serves the LFS endpoint discovery, the push's view and the
        # compare-and-swap's expected value
        assert len(adverts) == 1, (attempt, sent)
    main = (git_http_repo.path / "refs" / "heads" / "main").read_text().strip()
    assert_ok(run_cli("pull", git_http_repo.url, "acme/app:other", "-o", f"oci:{tmp_path / 'out.oci'}", env=env))
    assert main
