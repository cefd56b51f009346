"""Where credentials come from, end to end against the real git + LFS host (lfsreg/credentials.py).

The host is nginx + stock ``git http-backend`` + giftless behind HTTP Basic auth (tests/peers/).
Each source is used alone, in a fresh ``HOME``: ``LFSREG_TOKEN`` (with and without
``LFSREG_USERNAME``), a netrc file named by ``$NETRC``, and ``git credential fill`` through a
credential helper in an isolated git configuration (only with ``LFSREG_GIT_CREDENTIAL=1``).
A push must land (the server's branch moves, giftless holds the layers) with a good source, and
a refused one must end in one error line without the secret, the server unchanged.
"""

from __future__ import annotations

import functools
import stat
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from gitenv import cli_env
from peers.nginx import log_lines

pytestmark = pytest.mark.interop
IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))
TAG = "acme/base:1.0"


# git run by these tests ignores /etc/gitconfig (its credential helpers) too
_env = functools.partial(cli_env, GIT_CONFIG_NOSYSTEM="1")


# git run by these tests ignores /etc/gitconfig (its credential helpers) too
_env = functools.partial(cli_env, GIT_CONFIG_NOSYSTEM="1")


def _landed(server, repo, tmp_path: Path) -> None:
    """The push reached both halves of the host: the branch and giftless's store."""
    assert repo.main() is not None
    proc = run_cli("images", "--format", "json", repo.auth_url, env=_env(tmp_path / "check"))
    assert_ok(proc)
    assert "acme/base" in proc.stdout
    stored = list(repo.lfs_storage.iterdir()) if repo.lfs_storage and repo.lfs_storage.exists() else []
    assert stored, "no layer reached giftless"


def _refused(proc, repo, *secrets: str) -> None:
    assert_error(proc, 1, "authentication failed")
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr
    assert repo.main() is None


# -- LFSREG_TOKEN -------------------------------------------------------------------------------------
def test_a_token_with_a_username_pushes(git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_TOKEN=git_http_server.password)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", TAG, env=env))
    _landed(git_http_server, git_http_repo, tmp_path)


def test_a_token_alone_is_sent_as_x_access_token_and_refused_here(git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, LFSREG_TOKEN=git_http_server.password)
    _refused(run_cli("push", git_http_repo.url, IMAGE, "--tag", TAG, env=env), git_http_repo, git_http_server.password)
    mine = f"/{git_http_repo.name}.git/"
    # settled: nginx logs a request as it finalises it, possibly after the client has gone
    seen = [line for line in log_lines(git_http_server.access_log, until=lambda lines: any(mine in x for x in lines)) if mine in line]
    assert seen and all(" x-access-token " in line for line in seen)  # the user a token goes with, as the server saw it


def test_a_password_wins_over_a_token(git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password, LFSREG_TOKEN="not-the-token-77")
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", TAG, env=env))
    _landed(git_http_server, git_http_repo, tmp_path)


# -- NETRC ------------------------------------------------------------------------------------------
def test_a_netrc_file_named_by_the_netrc_variable_is_read(git_http_server, git_http_repo, tmp_path):
    netrc = tmp_path / "elsewhere" / "netrc"
    netrc.parent.mkdir()
    netrc.write_text(f"machine 127.0.0.1\n  login {git_http_server.user}\n  password {git_http_server.password}\n")
    netrc.chmod(0o600)
    assert not (tmp_path / "home" / ".netrc").exists()
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", TAG, env=_env(tmp_path, NETRC=str(netrc))))
    _landed(git_http_server, git_http_repo, tmp_path)


def test_a_netrc_for_another_host_or_malformed_gives_nothing(git_http_server, git_http_repo, tmp_path):
    other = tmp_path / "other.netrc"
    other.write_text(f"machine example.invalid login {git_http_server.user} password {git_http_server.password}\n")
    _refused(run_cli("images", git_http_repo.url, env=_env(tmp_path, NETRC=str(other))), git_http_repo, git_http_server.password)
    broken = tmp_path / "broken.netrc"
    broken.write_text(f"machine 127.0.0.1 login {git_http_server.user} password\n")  # a password without a value
    _refused(run_cli("images", git_http_repo.url, env=_env(tmp_path / "b", NETRC=str(broken))), git_http_repo)
    missing = tmp_path / "no-such.netrc"
    _refused(run_cli("images", git_http_repo.url, env=_env(tmp_path / "c", NETRC=str(missing))), git_http_repo)


def test_a_refused_source_falls_back_to_the_next_one(git_http_server, git_http_repo, tmp_path):
    """Environment credentials refused (git's 401 and the LFS batch API's 401): netrc's are tried next."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {git_http_server.user} password {git_http_server.password}\n")
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD="wrong-pw-31", NETRC=str(netrc))
    proc = run_cli("-v", "push", git_http_repo.url, IMAGE, "--tag", TAG, env=env)
    assert_ok(proc)
    assert "wrong-pw-31" not in proc.stderr + proc.stdout
    assert "trying the next source" in proc.stderr
    _landed(git_http_server, git_http_repo, tmp_path)


# -- git credential fill ------------------------------------------------------------------------------
def _helper(tmp_path: Path, answer: str) -> tuple[dict[str, str], Path]:
    """A git configuration whose only credential helper logs git's question and gives ``answer``."""
    questions = tmp_path / "questions"
    script = tmp_path / "helper.sh"
    script.write_text(f'#!/bin/sh\n[ "$1" = get ] || exit 0\ncat >> "{questions}"\nprintf "{answer}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "gitconfig"
    config.write_text(f"[credential]\n\thelper = {script}\n\tuseHttpPath = true\n")  # so the helper sees the path
    return {"GIT_CONFIG_GLOBAL": str(config)}, questions


def test_git_credential_fill_is_asked_when_enabled(git_http_server, git_http_repo, tmp_path):
    answer = f"username={git_http_server.user}\\npassword={git_http_server.password}\\n"
    extra, questions = _helper(tmp_path, answer)
    assert_ok(run_cli("push", git_http_repo.url, IMAGE, "--tag", TAG, env=_env(tmp_path, LFSREG_GIT_CREDENTIAL="1", **extra)))
    _landed(git_http_server, git_http_repo, tmp_path)
    asked = questions.read_text()
    assert "protocol=http\n" in asked
    assert f"host=127.0.0.1:{git_http_server.port}\n" in asked
    assert f"path={git_http_repo.name}.git" in asked


def test_git_credential_fill_is_not_asked_unless_enabled(git_http_server, git_http_repo, tmp_path):
    answer = f"username={git_http_server.user}\\npassword={git_http_server.password}\\n"
    extra, questions = _helper(tmp_path, answer)
    _refused(run_cli("images", git_http_repo.url, env=_env(tmp_path, **extra)), git_http_repo)
    assert not questions.exists()


def test_git_credential_fill_without_an_answer_gives_nothing(git_http_server, git_http_repo, tmp_path):
    extra, questions = _helper(tmp_path, "")  # the helper knows nothing; git may not prompt
    _refused(run_cli("images", git_http_repo.url, env=_env(tmp_path, LFSREG_GIT_CREDENTIAL="1", **extra)), git_http_repo)
    assert questions.exists()  # it was asked, and its silence was no credential
