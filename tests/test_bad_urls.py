"""Malformed registry and LFS URLs are bad usage: one line naming the URL (no credentials), exit 2.

Issue 8, defect 11: a port out of range or a malformed IPv6 host ended in "internal error".
"""

from __future__ import annotations

import pytest
from conftest import assert_error, fixture, run_cli

import lfsreg
from lfsreg.errors import UsageError

BAD = [
    ("http://127.0.0.1:99999/org/images.git", "http://127.0.0.1:99999/org/images.git"),
    ("https://u:s3cret-pw@127.0.0.1:99999/org/images.git", "https://127.0.0.1:99999/org/images.git"),
    ("http://host:abc/org/images.git", "http://host:abc/org/images.git"),
    ("http://[::1/org/images.git", "http://[::1/org/images.git"),
    ("https://u:s3cret-pw@[::1/org/images.git", "https://[::1/org/images.git"),
    ("https://[zz::1]/org/images.git", "https://[zz::1]/org/images.git"),
    ("ssh://git@[::1/org/images.git", "ssh://[::1/org/images.git"),
    ("file://[::1/srv/images.git", "file://[::1/srv/images.git"),
]


@pytest.mark.parametrize(("url", "shown"), BAD)
def test_bad_url_is_usage_error_naming_it(url, shown, tmp_path):
    env_home = {"HOME": str(tmp_path), "LFSREG_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    for argv in (["images", url], ["push", url, "docker-archive:" + str(fixture("base.docker.tar"))]):
        proc = run_cli(*argv, env=env_home)
        line = assert_error(proc, 2, shown)
        assert "s3cret-pw" not in proc.stderr + proc.stdout
        assert "internal error" not in line
    with pytest.raises(UsageError):
        lfsreg.Registry(url).tags()


@pytest.mark.parametrize("lfs_url", ["http://127.0.0.1:99999/lfs", "http://[::1/lfs"])
def test_bad_lfs_url_is_usage_error(lfs_url, tmp_path):
    # the git URL is fine but unreachable: the LFS URL must be refused before anything is sent
    env = {"HOME": str(tmp_path), "LFSREG_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = run_cli(
        "--lfs-url", lfs_url, "push", "http://127.0.0.1:1/org/images.git", "docker-archive:" + str(fixture("base.docker.tar")), env=env
    )
    assert_error(proc, 2, lfs_url)  # bad usage, named, before any connection (the git URL would say "unreachable", exit 1)
