"""Image names at Docker's 255-character limit (defect 4 of issue 9).

Docker and podman limit a repository name to 255 characters *as they expand it*
(``acme/app`` is ``docker.io/acme/app``, ``alpine`` is ``docker.io/library/alpine``). lfsreg
checked the name before expanding it, so names of 246-255 characters were pushed, and the
archives pulled from them were refused by ``podman load``; over 255 the message spoke of
lowercase letters. The limit is now checked on the expanded name, with a message about length.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env, require_tool
from imageverify import FIXTURES
from peers.engine import podman_storage

from lfsreg.errors import InvalidReference
from lfsreg.reference import MAX_NAME, ImageRef, expanded, validate_name

SOURCE = f"oci:{FIXTURES / 'tool.oci'}:2.0"


def _two(total: int) -> str:
    """A two-component name of ``total`` characters (Docker adds ``docker.io/``: 10 more)."""
    return "acme/" + "b" * (total - len("acme/"))


def _one(total: int) -> str:
    """A one-component name of ``total`` characters (Docker adds ``docker.io/library/``: 18 more)."""
    return "c" * total


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("acme/app", "docker.io/acme/app"),
        ("docker.io/acme/app", "docker.io/acme/app"),
        ("docker.io/alpine", "docker.io/library/alpine"),
        ("index.docker.io/alpine", "docker.io/library/alpine"),
        ("localhost/app", "localhost/app"),
        ("registry.example.com/a/b", "registry.example.com/a/b"),
        ("host:5000/app", "host:5000/app"),
        ("Host/app", "Host/app"),  # an upper-case first component can only be a host
    ],
)
def test_expanded_is_dockers_full_name(name: str, full: str) -> None:
    assert expanded(name) == full


@pytest.mark.parametrize(
    ("fits", "too_long"),
    [
        (_two(MAX_NAME - 10), _two(MAX_NAME - 9)),  # 245 / 246: the range the defect let through starts here
        (_one(MAX_NAME - 18), _one(MAX_NAME - 17)),
        ("registry.example.com/" + "d" * (MAX_NAME - 21), "registry.example.com/" + "d" * (MAX_NAME - 20)),
        ("localhost/" + "e" * (MAX_NAME - 10), "localhost/" + "e" * (MAX_NAME - 9)),
    ],
)
def test_the_limit_is_on_the_expanded_name(fits: str, too_long: str) -> None:
    assert len(expanded(fits)) == MAX_NAME and len(expanded(too_long)) == MAX_NAME + 1
    assert validate_name(fits) == fits
    with pytest.raises(InvalidReference) as info:
        validate_name(too_long)
    text = str(info.value)
    assert "too long" in text and f"{MAX_NAME + 1} characters" in text, text
    assert "lowercase" not in text and "\n" not in text


@pytest.mark.parametrize("length", [246, 255, 256, 300, 4000])
def test_over_the_limit_the_message_is_about_length(length: str) -> None:
    name = _two(length)
    with pytest.raises(InvalidReference) as info:
        ImageRef.parse(f"{name}:1")
    text = str(info.value)
    assert "too long" in text and "lowercase" not in text, text
    assert len(text) < 300, "a long name is shortened in the message"


def test_a_long_name_with_bad_letters_is_refused_for_its_length() -> None:
    with pytest.raises(InvalidReference, match="too long"):
        validate_name("A" * 300)
    with pytest.raises(InvalidReference, match="lowercase"):
        validate_name("Acme/app")


@pytest.mark.parametrize("name", [_two(246), _two(255), _one(238)])
def test_push_refuses_a_name_docker_would_refuse_and_writes_nothing(tmp_path: Path, name: str) -> None:
    repo = tmp_path / "reg.git"
    proc = run_cli("push", repo, SOURCE, "--tag", f"{name}:1", env=cli_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("lfsreg: error: invalid image name ") and "too long" in lines[0], proc.stderr
    assert "lowercase" not in proc.stderr and "Traceback" not in proc.stderr
    assert not repo.exists()


# -- what real podman reads -----------------------------------------------------------------------
def _podman(store: Path, runroot: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [require_tool("podman"), *podman_storage(store, runroot), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def _loaded_names(tmp_path: Path, archive: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``podman load`` the archive into fresh storage; the names it then holds."""
    runroot = tempfile.mkdtemp(prefix="lfsreg-rr-", dir="/tmp")  # podman wants a short runroot path
    store = tmp_path / f"podman-{archive.stem}"
    try:
        loaded = _podman(store, runroot, "load", "-i", str(archive))
        listed = _podman(store, runroot, "images", "--format", "{{.Repository}}:{{.Tag}}")
        return loaded, listed.stdout.split()
    finally:
        _podman(store, runroot, "rm", "-a", "-f")
        shutil.rmtree(runroot, ignore_errors=True)


def _retagged(src: Path, dest: Path, old: str, new: str) -> Path:
    """A copy of the docker-archive ``src`` with the name ``old`` replaced by ``new`` everywhere."""
    import io
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for info in tin:
            f = tin.extractfile(info) if info.isfile() else None
            if f is not None and info.name in ("manifest.json", "index.json", "repositories"):
                data = f.read().replace(old.encode(), new.encode())
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
            else:
                tout.addfile(info, f)
    return dest


@pytest.mark.interop
def test_podman_loads_what_lfsreg_writes_at_the_limit(tmp_path: Path) -> None:
    """A name exactly at the limit goes through push, pull and ``podman load``; one more character is podman's limit too."""
    require_tool("podman")
    env = cli_env(tmp_path)
    repo = tmp_path / "reg.git"
    at_limit = _two(MAX_NAME - 10)
    single = _one(MAX_NAME - 18)
    for name in (at_limit, single):
        pushed = run_cli("push", repo, SOURCE, "--tag", f"{name}:1", env=env)
        assert pushed.returncode == 0, pushed.stderr
    for name in (at_limit, single):
        archive = tmp_path / f"{len(name)}.tar"
        pulled = run_cli("pull", repo, f"{name}:1", "-o", f"docker-archive:{archive}", env=env)
        assert pulled.returncode == 0, pulled.stderr
        loaded, names = _loaded_names(tmp_path, archive)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert any(n.endswith(f"/{name}:1") for n in names), names
    # The precondition of the limit: podman refuses the same archive one character over it.
    over = _retagged(tmp_path / f"{len(at_limit)}.tar", tmp_path / "over.tar", at_limit, at_limit + "b")
    refused, _ = _loaded_names(tmp_path, over)
    assert refused.returncode != 0 and "must not be more than 255 characters" in refused.stderr, refused.stderr[-2000:]
