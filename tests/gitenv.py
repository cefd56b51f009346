"""Helpers for tests that run stock ``git`` and ``git-lfs`` (stdlib + pytest only).

Modelled on dulwich's ``tests/compat/utils.py``: the real tools run as subprocesses,
in an environment that ignores the machine's git configuration (``/etc/gitconfig``,
``~/.gitconfig`` -- which on the CI image already carries a ``filter.lfs`` section),
so results do not depend on who runs the suite.

Typical use::

    from gitenv import isolated_git_env, require_tool, run_git

    def test_clone(tmp_path):
        require_tool("git-lfs")
        env = isolated_git_env(tmp_path)
        run_git(["init", "repo"], cwd=tmp_path, env=env)
        out = run_git(["lfs", "env"], cwd=tmp_path / "repo", env=env).stdout

A missing tool *fails* the test, on a developer's machine as in CI, with a message naming
the install step that provides it (:func:`missing_prerequisite`): a run that could not test
something never passes, and the run ends with a summary of what was not tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Fixed author/committer date, git's internal "<unix time> <tz>" format (2024-01-01Z).
FIXED_GIT_DATE = "1704067200 +0000"
#: Identity written into the isolated global config.
GIT_USER_NAME = "lfsreg tests"
GIT_USER_EMAIL = "tests@lfsreg.invalid"
#: Seconds before :func:`run_git` kills a hung git (``subprocess.TimeoutExpired``).
GIT_TIMEOUT = 300.0

#: Marks the failure of a test whose prerequisite is missing (conftest's run summary looks for it).
MISSING_MARK = "missing test prerequisite:"
INSTALL_SCRIPT = "tools/install-test-deps.sh"
#: The Debian package that provides a tool (installed by :data:`INSTALL_SCRIPT`).
DEBIAN_PACKAGE = {
    "git": "git",
    "git-lfs": "git-lfs",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "zstd": "zstd",
    "busybox": "busybox-static",
    "nginx": "nginx",
    "fcgiwrap": "fcgiwrap",
    "htpasswd": "apache2-utils",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ssh-agent": "openssh-client",
    "ssh-add": "openssh-client",
    "podman": "podman",
    "docker-registry": "docker-registry",
}


def install_step(tool: str) -> str:
    """The step that provides ``tool``, e.g. ``"install it with tools/install-test-deps.sh (Debian package git-lfs)"``."""
    package = DEBIAN_PACKAGE.get(tool)
    return f"install it with {INSTALL_SCRIPT}" + (f" (Debian package {package})" if package else "")


def missing_prerequisite(what: str, install: str) -> NoReturn:
    """Fail the current test: ``what`` (a tool, a peer, a sample) is missing; ``install`` says what provides it.

    Never a skip, with or without ``CI``: a skipped test would hide a peer nobody installed.
    """
    pytest.fail(f"{MISSING_MARK} {what}; {install}", pytrace=False)


_GLOBAL_CONFIG = f"""\
[user]
\tname = {GIT_USER_NAME}
\temail = {GIT_USER_EMAIL}
[init]
\tdefaultBranch = main
[gc]
\tauto = 0
[maintenance]
\tauto = false
[advice]
\tdetachedHead = false
"""


class GitCommandError(subprocess.CalledProcessError):
    """A git command exited non-zero; ``str()`` includes its stderr (and stdout)."""

    def __str__(self) -> str:
        """Return the command, exit status, and the captured output."""
        text = super().__str__()
        for label, data in (("stderr", self.stderr), ("stdout", self.output)):
            if data:
                shown = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
                text += f"\n--- {label} ---\n{shown.rstrip()}"
        return text


def require_tool(name: str) -> str:
    """Return the path of an executable, or fail the current test if it is missing.

    Missing is a failure with or without ``CI`` (:func:`missing_prerequisite`), naming the
    install step that provides the tool.

    Args:
        name: Executable name looked up on ``PATH`` (e.g. ``"git"``, ``"git-lfs"``,
            ``"skopeo"``).

    Returns:
        The absolute path of the executable.

    """
    path = shutil.which(name)
    if path is not None:
        return path
    missing_prerequisite(f"tool {name!r} not found on PATH", install_step(name))


def isolated_git_env(tmp_path: str | os.PathLike[str], *, lfs: bool = True) -> dict[str, str]:
    """Build an environment in which git and git-lfs see only a fresh, known config.

    Creates ``tmp_path/git-home`` as ``HOME`` with a global config file
    (``GIT_CONFIG_GLOBAL``) holding ``user.name``/``user.email``,
    ``init.defaultBranch=main``, ``gc.auto=0`` and ``maintenance.auto=false``, and --
    when ``lfs`` is true -- the ``filter.lfs`` section written by running
    ``git lfs install --skip-repo`` in that environment. The system config is
    disabled (``GIT_CONFIG_NOSYSTEM=1``), every inherited ``GIT_*`` variable is dropped
    (e.g. ``GIT_DIR`` when the suite runs from a git hook), and the rest is pinned:
    ``LC_ALL=C``, ``GIT_AUTO_GC=0``, ``GIT_TERMINAL_PROMPT=0``, fixed
    ``GIT_AUTHOR_DATE`` / ``GIT_COMMITTER_DATE``. ``PATH`` and other unrelated
    variables are inherited.

    Args:
        tmp_path: A per-test temporary directory (pytest's ``tmp_path``).
        lfs: Whether to install the LFS filter config; requires ``git-lfs`` (see
            :func:`require_tool`).

    Returns:
        A new environment mapping to pass as ``env=`` to subprocesses or
        :func:`run_git`.

    """
    require_tool("git")
    home = Path(tmp_path) / "git-home"
    home.mkdir(parents=True, exist_ok=True)
    global_config = home / "gitconfig"
    global_config.write_text(_GLOBAL_CONFIG, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(global_config),
            "LC_ALL": "C",
            "LANGUAGE": "C",
            # Not read by git itself (gc.auto=0 in the config does the work); kept
            # for scripts that honour it.
            "GIT_AUTO_GC": "0",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_DATE": FIXED_GIT_DATE,
            "GIT_COMMITTER_DATE": FIXED_GIT_DATE,
        }
    )
    if lfs:
        require_tool("git-lfs")
        run_git(["lfs", "install", "--skip-repo"], cwd=home, env=env)
    return env


#: What an lfsreg CLI run by a test must not inherit from the machine: lfsreg's own settings,
#: git's, XDG directories, a netrc, an ssh-agent. (``LFSREG_FORMATS``, the tests' own, stays.)
CLI_ENV_DROP = ("LFSREG_", "XDG_", "GIT_", "NETRC", "SSH_")


def cli_env(
    tmp_path: str | os.PathLike[str],
    server: object | None = None,
    *,
    sshd: object | None = None,
    key: object | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    drop: Sequence[str] = (),
    **extra: str,
) -> dict[str, str]:
    """The environment of an ``lfsreg`` run: the one helper of every test that runs the CLI on a clean slate.

    This process's environment without the :data:`CLI_ENV_DROP` (and ``drop``) prefixes, with
    ``HOME`` (created) and ``LFSREG_CACHE`` under ``tmp_path``; ``server``'s ``user`` and
    ``password`` as ``LFSREG_USERNAME``/``LFSREG_PASSWORD``; for an ``sshd`` peer its
    known_hosts (or ``known_hosts``) as ``LFSREG_SSH_KNOWN_HOSTS`` and ``key`` (a peer key)
    as ``LFSREG_SSH_KEY``; then ``extra``.
    """
    home = Path(tmp_path) / "home"
    home.mkdir(parents=True, exist_ok=True)
    prefixes = (*CLI_ENV_DROP, *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) or k == "LFSREG_FORMATS"}
    env.update(HOME=str(home), LFSREG_CACHE=str(Path(tmp_path) / "cache"))
    if server is not None:
        env.update(LFSREG_USERNAME=server.user, LFSREG_PASSWORD=server.password)  # type: ignore[attr-defined]
    if sshd is not None:
        env["LFSREG_SSH_KNOWN_HOSTS"] = str(known_hosts or sshd.known_hosts)  # type: ignore[attr-defined]
    if key is not None:
        env["LFSREG_SSH_KEY"] = str(key.path)  # type: ignore[attr-defined]
    env.update(extra)
    return env


def use_cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: str | os.PathLike[str], server: object | None = None) -> None:
    """:func:`cli_env` for in-process runs (the library, or ``run_cli``): this process's environment, until the test ends."""
    env = cli_env(tmp_path, server)
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def run_git(
    args: Sequence[str | os.PathLike[str]],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    *,
    input_bytes: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` and capture its output.

    Args:
        args: Arguments after ``git`` (e.g. ``["commit", "-m", "msg"]``).
        cwd: Working directory for the command.
        env: Environment, normally from :func:`isolated_git_env`.
        input_bytes: Bytes fed to the command's stdin (otherwise stdin is empty,
            never the terminal).
        check: Raise :class:`GitCommandError` on a non-zero exit (the default).

    Returns:
        The completed process; ``stdout`` and ``stderr`` are bytes.

    Raises:
        GitCommandError: If ``check`` is true and git exits non-zero; its message
            contains git's stderr.

    """
    cmd = ["git", *(os.fspath(a) for a in args)]
    proc = subprocess.run(
        cmd,
        cwd=os.fspath(cwd),
        env=dict(env),
        input=input_bytes if input_bytes is not None else b"",
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitCommandError(proc.returncode, cmd, output=proc.stdout, stderr=proc.stderr)
    return proc
