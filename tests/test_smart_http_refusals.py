"""A real smart-HTTP git host saying no (lfsreg/git/remote.py): no such repository, a refused push.

The host is nginx + stock ``git http-backend`` + giftless (tests/peers/). A repository that
does not exist answers 404; a ``pre-receive`` hook in the served repository declines every
push, as a protected branch does. Both end in one error line with the right exit code, and the
server's branch stays where it was. A host where nothing listens is unreachable, said once.
"""

from __future__ import annotations

import socket
import stat

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from gitenv import cli_env

import lfsreg
from lfsreg.errors import PermissionDeniedError, RepositoryNotFound, UnreachableError

pytestmark = pytest.mark.interop
IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))
OTHER = "docker-archive:" + str(fixture("app.docker.tar"))


def _decline(repo, why: str) -> None:
    hook = repo.path / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\necho '{why}' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_a_repository_that_does_not_exist_is_not_found(git_http_server, tmp_path):
    url = f"{git_http_server.url}/nobody/nothing.git"
    env = cli_env(tmp_path, git_http_server)
    assert_error(run_cli("images", url, env=env), 1, "repository not found")
    proc = run_cli("push", url, IMAGE, "--tag", "acme/base:1", env=env)
    assert_error(proc, 1, "repository not found")
    assert not (git_http_server.root / "nobody").exists()


def test_a_repository_that_does_not_exist_in_the_library(git_http_server, tmp_path, monkeypatch):
    for name, value in cli_env(tmp_path, git_http_server).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RepositoryNotFound) as info:
        lfsreg.Registry(f"{git_http_server.url}/nobody/nothing.git").images()
    assert info.value.hint and "credentials" in info.value.hint


def test_a_declined_first_push_is_refused_and_leaves_no_branch(git_http_server, git_http_repo, tmp_path):
    _decline(git_http_repo, "protected: no pushes here")
    proc = run_cli("push", git_http_repo.url, IMAGE, "--tag", "acme/base:1", env=cli_env(tmp_path, git_http_server))
    line = assert_error(proc, 1, "the remote refused the update of refs/heads/main")
    assert "pre-receive hook declined" in line
    assert git_http_repo.main() is None


def test_a_declined_push_onto_a_registry_leaves_its_branch(git_http_server, git_http_repo, tmp_path, monkeypatch):
    env = cli_env(tmp_path, git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", "acme/base:1", env=env))
    before = git_http_repo.main()
    _decline(git_http_repo, "frozen")
    assert_error(run_cli("push", git_http_repo.url, OTHER, "--tag", "acme/app:1", env=env), 1, "refused the update")
    assert git_http_repo.main() == before
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(PermissionDeniedError):
        lfsreg.Registry(git_http_repo.url).remove(["acme/base:1"])
    assert git_http_repo.main() == before
    proc = run_cli("images", git_http_repo.url, env=env)  # reading is still fine
    assert_ok(proc)
    assert "acme/base" in proc.stdout and "acme/app" not in proc.stdout


def test_a_git_host_that_refuses_connections_is_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/org/images.git"
    env = cli_env(tmp_path)
    for argv in (["images", url], ["push", url, IMAGE, "--tag", "acme/base:1"]):
        proc = run_cli(*argv, env=env)
        assert_error(proc, 1, "cannot connect")
        assert "check the address, and that the server is running" in proc.stderr
    with pytest.raises(UnreachableError):
        lfsreg.Registry(url).images()
