"""A committed ``.lfsconfig`` that names no LFS URL, or the git host's own (lfsreg/registry/endpoint.py).

Against the real git + LFS host (nginx + git http-backend + giftless, tests/peers/): a
``.lfsconfig`` without ``lfs.url`` leaves the endpoint derived from the git URL; one naming the
git host's own LFS URL gets the credentials given for that host. Either way the layers land in
giftless and the image pulls back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env, isolated_git_env, run_git

pytestmark = pytest.mark.interop
IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))


def _commit_lfsconfig(repo, text: str, tmp_path: Path) -> None:
    genv = isolated_git_env(tmp_path / "git", lfs=False)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", str(repo.path), str(clone)], cwd=tmp_path, env=genv)
    (clone / ".lfsconfig").write_text(text)
    run_git(["add", ".lfsconfig"], cwd=clone, env=genv)
    run_git(["commit", "-qm", "lfsconfig"], cwd=clone, env=genv)
    run_git(["push", "-q", "origin", "HEAD:main"], cwd=clone, env=genv)


def _layers_in_giftless(repo) -> set[str]:
    return {p.name for p in repo.lfs_storage.iterdir()} if repo.lfs_storage.exists() else set()


@pytest.mark.parametrize(
    "lfsconfig",
    [
        "[lfs]\n\tconcurrenttransfers = 3\n",  # other lfs settings, no url
        "[core]\n\tbare = true\n",  # no lfs section at all
        "[lfs\n",  # not even a config file
    ],
    ids=["no-url", "no-lfs-section", "unparsable"],
)
def test_an_lfsconfig_without_a_url_keeps_the_derived_endpoint(git_http_server, git_http_repo, tmp_path, lfsconfig):
    env = cli_env(tmp_path, git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", "acme/base:1", env=env))
    _commit_lfsconfig(git_http_repo, lfsconfig, tmp_path)
    before = _layers_in_giftless(git_http_repo)
    app = "docker-archive:" + str(fixture("app.docker.tar"))
    assert_ok(run_cli("push", git_http_repo.url, app, "--tag", "acme/app:1", env=env))
    assert _layers_in_giftless(git_http_repo) > before  # the new layers went to the derived endpoint
    assert_ok(
        run_cli(
            "pull",
            git_http_repo.url,
            "acme/app:1",
            "-o",
            f"docker-archive:{tmp_path / 'app.tar'}",
            env=cli_env(tmp_path / "b", git_http_server),
        )
    )


def test_an_lfsconfig_naming_the_git_hosts_own_endpoint_gets_its_credentials(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path, git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", "acme/base:1", env=env))
    # The endpoint lfsreg would derive anyway, named explicitly: the same host, so the same credentials.
    _commit_lfsconfig(git_http_repo, f'[lfs]\n\turl = "{git_http_repo.lfs_url}"\n', tmp_path)
    app = "docker-archive:" + str(fixture("app.docker.tar"))
    assert_ok(run_cli("push", git_http_repo.url, app, "--tag", "acme/app:1", env=env))
    out = tmp_path / "app.tar"
    assert_ok(run_cli("pull", git_http_repo.url, "acme/app:1", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "b", git_http_server)))
    assert out.stat().st_size > 0
