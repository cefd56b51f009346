"""Every error the library raises belongs to the tree in lfsreg.errors: SSH failures included, no bare LfsregError."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lfsreg import errors
from lfsreg.ssh import errors as ssh_errors

PKG = Path(__file__).resolve().parents[1] / "lfsreg"


@pytest.mark.parametrize(
    ("cls", "family"),
    [
        (ssh_errors.SshError, errors.UnreachableError),
        (ssh_errors.SshAuthError, errors.AuthenticationError),
        (ssh_errors.HostKeyError, errors.AuthenticationError),
        (ssh_errors.SshPermissionError, errors.PermissionDeniedError),
        (ssh_errors.RepositoryNotFound, errors.RepositoryNotFound),
        (ssh_errors.CommandMissing, errors.ProtocolError),
    ],
)
def test_ssh_errors_are_in_the_tree(cls, family):
    assert issubclass(cls, family)


def test_command_failure_without_known_wording_is_a_protocol_error():
    err = ssh_errors.command_failed("host", "git-upload-pack", 2, b"", writing=False)
    assert type(err) is errors.ProtocolError


def test_no_bare_lfsreg_error_is_raised():
    bare = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "LfsregError":
                    bare.append(f"{path.relative_to(PKG.parent)}:{node.lineno}")
    assert not bare, f"raise a class from lfsreg.errors instead of LfsregError: {bare}"
