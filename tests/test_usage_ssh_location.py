"""``lfsreg usage`` of a registry named by an SSH location or with a user name in its URL (issue
10; ops/hostusage.py): the host's HTTPS API is asked about the repository path the location
names, with the token lfsreg has for the host. A user name alone in the location (the SSH login
``git``, or ``alice@``) is no token: it used to be sent as an empty one, hiding LFSREG_TOKEN.

The host API stand-in is test_usage_meters.py's (the response shapes GitLab documents).
"""

from __future__ import annotations

import pytest
from test_usage_meters import TOKEN, _registry, hosts  # noqa: F401  (hosts: the server fixture)


@pytest.mark.parametrize(
    "location",
    ["git@gitlab.example:acme/images.git", "ssh://git@gitlab.example:2222/acme/images.git", "https://alice@gitlab.example/acme/images.git"],
)
def test_an_ssh_location_asks_the_api_about_its_path(hosts, monkeypatch, location):  # noqa: F811
    base, seen = hosts
    found = _registry(location, TOKEN, monkeypatch).usage(kind="gitlab", api_url=f"{base}/api/v4")
    assert {m.name: m.value for m in found.meters}.get("LFS objects") == 2_300_000, (found.missing, seen)
    assert seen[-1][0] == "/api/v4/projects/acme%2Fimages?statistics=true" and seen[-1][1]["private-token"] == TOKEN
