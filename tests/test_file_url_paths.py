"""``file://`` URLs with percent-encoded paths (defect 2 of issue 9).

``file:///srv/my%20reg.git`` names the directory ``/srv/my reg.git``. lfsreg decoded the path
to create the repository but handed the raw URL to dulwich, so push, images and pull failed
with "repository not found", and the failed first push left the empty repository behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import run_cli
from gitenv import cli_env, isolated_git_env
from imageverify import FIXTURES, source_image, verify_oci_layout
from test_git_durability import fsck_clean

import lfsreg as lfsreg_api
from lfsreg.errors import RepositoryNotFound
from lfsreg.git import remote as git_remote

SOURCE = f"oci:{FIXTURES / 'app.oci'}:1.0"
# Directory names a URL must percent-encode, and one (":") that a plain path would turn into
# an scp-like SSH location for dulwich.
NAMES = ["my reg.git", "50%.git", "a:b.git", "caf\u00e9 #1?.git"]


def _url(path: Path) -> str:
    return "file://" + quote(str(path))


@pytest.mark.parametrize("name", NAMES)
def test_push_images_pull_through_a_percent_encoded_file_url(tmp_path: Path, name: str) -> None:
    """The decoded path is the repository everywhere: created there, read there, pulled from there."""
    env = cli_env(tmp_path)
    repo = tmp_path / name
    url = _url(repo)
    assert "%" in url  # the precondition: the URL really is encoded
    pushed = run_cli("push", url, SOURCE, "--tag", "acme/app:1.0", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert (repo / "HEAD").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["home", "cache", name])  # nothing at an encoded name

    listed = run_cli("images", url, "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["name"], r["tag"]) for r in json.loads(listed.stdout)] == [("acme/app", "1.0")]

    # A fresh cache: the layers must come from the remote's LFS directory, not from the push.
    env["LFSREG_CACHE"] = str(tmp_path / "cache2")
    out = tmp_path / "out"
    pulled = run_cli("pull", url, "acme/app:1.0", "-o", f"oci:{out}", env=env)
    assert pulled.returncode == 0, pulled.stderr
    (image,) = verify_oci_layout(out)
    assert image.diff_ids == source_image(SOURCE).diff_ids

    again = run_cli("push", url, f"oci:{FIXTURES / 'tool.oci'}:2.0", "--tag", "acme/tool:2.0", env=env)
    assert again.returncode == 0, again.stderr
    tags = run_cli("tags", url, "--format", "json", env=env)
    assert sorted(r["tag"] for r in json.loads(tags.stdout)) == ["1.0", "2.0"]
    fsck_clean(repo, isolated_git_env(tmp_path))


def test_failed_first_push_to_a_percent_encoded_url_leaves_nothing(tmp_path: Path) -> None:
    """A push that fails after creating the repository removes it (decoded path, no encoded twin)."""
    env = cli_env(tmp_path)
    repo = tmp_path / "my reg.git"
    bad = f"docker-archive:{FIXTURES / 'bad' / 'digest-mismatch.docker.tar'}"
    proc = run_cli("push", _url(repo), bad, "--tag", "acme/bad:1", env=env)
    assert proc.returncode == 1, proc.stderr
    assert "does not" in proc.stderr or "expected sha256:" in proc.stderr, proc.stderr  # failed on the source, not the URL
    assert "repository not found" not in proc.stderr
    assert not repo.exists()
    assert not (tmp_path / "my%20reg.git").exists()


def test_first_push_that_cannot_read_back_its_new_repository_removes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clean-up does not depend on reading the registry through its URL: it asks the directory.

    The old failure (dulwich given the undecoded path) is forced here for any URL: the remote
    cannot be read back, yet the repository this push created, still without a commit, goes.
    """

    def unreadable(self: git_remote.GitRemote) -> str | None:
        raise RepositoryNotFound(f"{self.label}: repository not found")

    monkeypatch.setattr(git_remote.GitRemote, "fetch_tip", unreadable)
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "plain.git"
    with pytest.raises(RepositoryNotFound), lfsreg_api.Registry(f"file://{repo}") as reg:
        reg.push([SOURCE], tags=["acme/app:1.0"])
    assert not repo.exists()


def test_clean_up_keeps_a_repository_that_has_a_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct look at the directory must not remove a registry someone published meanwhile."""
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "raced.git"
    published = []

    def unreadable(self: git_remote.GitRemote) -> str | None:
        # Another pusher publishes into the repository this push just created, then the read fails.
        if not published:
            with lfsreg_api.Registry(str(repo)) as other:
                other.push([f"oci:{FIXTURES / 'tool.oci'}:2.0"], tags=["acme/tool:2.0"])
            published.append(True)
        raise RepositoryNotFound(f"{self.label}: repository not found")

    monkeypatch.setattr(git_remote.GitRemote, "fetch_tip", unreadable)
    with pytest.raises(RepositoryNotFound), lfsreg_api.Registry(f"file://{repo}") as reg:
        reg.push([SOURCE], tags=["acme/app:1.0"])
    assert published == [True]
    assert (repo / "HEAD").is_file()
    monkeypatch.undo()
    with lfsreg_api.Registry(str(repo)) as reg:
        assert [(t.name, t.tag) for t in reg.tags()] == [("acme/tool", "2.0")]


def test_init_inspect_and_rm_through_a_percent_encoded_file_url(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    repo = tmp_path / "with space.git"
    url = _url(repo)
    created = run_cli("init", url, env=env)
    assert created.returncode == 0, created.stderr
    assert (repo / "HEAD").is_file() and not (tmp_path / "with%20space.git").exists()
    assert run_cli("push", url, SOURCE, "--tag", "acme/app:1.0", env=env).returncode == 0
    shown = run_cli("inspect", url, "acme/app:1.0", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["digest"].startswith("sha256:")
    removed = run_cli("rm", url, "acme/app:1.0", env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(run_cli("tags", url, "--format", "json", env=env).stdout) == []
