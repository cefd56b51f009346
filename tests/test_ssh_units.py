"""SSH pieces without a server: locations, host key checking, keys, error wording, LFS auth parsing."""

from __future__ import annotations

import base64
import time

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from lfsreg.errors import LfsregError, ProtocolError, UsageError
from lfsreg.ssh.errors import CommandMissing, RepositoryNotFound, SshPermissionError, command_failed
from lfsreg.ssh.url import SshUrl, is_ssh_location, parse_ssh_url


# -- locations -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("git@github.com:org/images.git", SshUrl("github.com", None, "git", "org/images.git", True)),
        ("host:images.git", SshUrl("host", None, None, "images.git", True)),
        ("ssh://git@gitlab.example:2222/org/images.git", SshUrl("gitlab.example", 2222, "git", "/org/images.git")),
        ("ssh://host/~/images.git", SshUrl("host", None, None, "~/images.git")),
        ("git+ssh://u@h/a%20b.git", SshUrl("h", None, "u", "/a b.git")),
        ("git@[::1]:org/x.git", SshUrl("::1", None, "git", "org/x.git", True)),
    ],
)
def test_parse_ssh_locations(location, expected):
    assert is_ssh_location(location)
    assert parse_ssh_url(location) == expected


@pytest.mark.parametrize("location", ["/srv/reg.git", "./a:b", "reg.git", "C:\\reg", "https://h/x.git", "file:///x", "relative/dir:x"])
def test_paths_and_other_urls_are_not_ssh(location):
    assert not is_ssh_location(location)


@pytest.mark.parametrize("location", ["ssh://host/", "ssh://-oProxyCommand=x/r.git", "host:", "ssh://u:pw@host/r.git", "ssh://h:99999/r"])
def test_bad_ssh_locations_are_usage_errors(location):
    with pytest.raises(UsageError) as info:
        parse_ssh_url(location)
    assert "pw" not in str(info.value)


def test_url_forms_and_derived_lfs_endpoint():
    scp = parse_ssh_url("git@github.com:org/images.git")
    assert str(scp) == "git@github.com:org/images.git"
    assert scp.known_hosts_name == "github.com"
    assert scp.https_lfs_endpoint() == "https://github.com/org/images.git/info/lfs"
    url = parse_ssh_url("ssh://git@h:2222/org/images")
    assert str(url) == "ssh://git@h:2222/org/images"
    assert url.known_hosts_name == "[h]:2222"
    assert url.https_lfs_endpoint() == "https://h/org/images.git/info/lfs"  # git-lfs drops the port
    assert parse_ssh_url("ssh://h:22/x.git").known_hosts_name == "h"


# -- host keys -------------------------------------------------------------------------------------
def _host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(_io(_openssh(ed25519.Ed25519PrivateKey.generate())))


def _openssh(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def _io(text: str):
    import io

    return io.StringIO(text)


def test_host_key_checker(tmp_path):
    from lfsreg.ssh.errors import HostKeyError
    from lfsreg.ssh.hostkeys import HostKeyChecker, known_hosts_line

    key, other = _host_key(), _host_key()
    known = tmp_path / "kh"
    checker = HostKeyChecker(str(known), system_file=str(tmp_path / "none"))
    with pytest.raises(HostKeyError) as info:
        checker.check("[h]:2222", key)
    assert key.fingerprint in str(info.value) and known_hosts_line("[h]:2222", key) in info.value.hint
    assert not known.exists()
    HostKeyChecker(str(known), accept_new=True, system_file=str(tmp_path / "none")).check("[h]:2222", key)
    assert known.read_text() == known_hosts_line("[h]:2222", key) + "\n"
    checker.check("[h]:2222", key)  # now known
    for accept_new in (False, True):
        with pytest.raises(HostKeyError, match="CHANGED"):
            HostKeyChecker(str(known), accept_new=accept_new, system_file=str(tmp_path / "none")).check("[h]:2222", other)
    # hashed names, wildcards, negation, revocation, garbage lines
    hashed = paramiko.HostKeys.hash_host("h2")
    known.write_text(
        f"garbage\n@cert-authority * ssh-ed25519 AAAA==\n{hashed} {key.get_name()} {key.get_base64()}\n"
        f"*.corp,!bad.corp {key.get_name()} {key.get_base64()}\n@revoked * {other.get_name()} {other.get_base64()}\n"
    )
    checker.check("h2", key)
    checker.check("a.corp", key)
    with pytest.raises(HostKeyError, match="unknown"):
        checker.check("bad.corp", key)
    with pytest.raises(HostKeyError, match="revoked"):
        checker.check("new-host", other)


# -- keys ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1()), lambda: rsa.generate_private_key(65537, 2048)],
)
def test_key_text_formats_and_passphrases(make):
    from lfsreg.ssh.identity import load_private_key, normalise_key_text

    key = make()
    text = _openssh(key)
    loaded = load_private_key(text, None, "k")
    escaped = text.strip().replace("\n", "\\n")  # as some CI systems store multi-line secrets
    assert load_private_key(normalise_key_text(escaped), None, "k").get_base64() == loaded.get_base64()
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret-pass")
    ).decode()
    assert load_private_key(pkcs8, "s3cret-pass", "k").get_base64() == loaded.get_base64()
    with pytest.raises(LfsregError, match="encrypted") as info:
        load_private_key(pkcs8, None, "k")
    assert "LFSREG_SSH_PASSPHRASE" in info.value.hint
    with pytest.raises(LfsregError, match="wrong passphrase"):
        load_private_key(pkcs8, "nope", "k")
    with pytest.raises(UsageError) as bad:
        load_private_key(text.replace("A", "B", 40), None, "the key given")
    assert "AAAA" not in str(bad.value) and "BBBB" not in str(bad.value)


def test_keygen_writes_0600_openssh_key(tmp_path):
    from lfsreg.keys import fingerprint, write_keypair
    from lfsreg.ssh.identity import load_private_key

    pair = write_keypair(str(tmp_path / "k"), "ci key")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert pair.public_line.startswith("ssh-ed25519 ") and pair.public_line.endswith(" ci key")
    key = load_private_key((tmp_path / "k").read_text(), None, "k")
    assert key.get_base64() == pair.public_line.split()[1] and key.fingerprint == pair.fingerprint == fingerprint(pair.public_line)
    with pytest.raises(LfsregError, match="exists"):
        write_keypair(str(tmp_path / "k"))
    (tmp_path / "k").chmod(0o644)
    assert write_keypair(str(tmp_path / "k"), force=True).public_line != pair.public_line
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_keygen_instructions_per_host():
    from lfsreg.cli.keygen import instructions

    assert instructions("git@github.com:acme/images.git") == [
        "GitHub:    https://github.com/acme/images/settings/keys/new  (Settings > Deploy keys > Add deploy key): "
        "paste the key, tick 'Allow write access'"
    ]
    (gitlab,) = instructions("ssh://git@gitlab.com/grp/sub/images.git")
    assert "https://gitlab.com/grp/sub/images/-/settings/repository" in gitlab and "Grant write permissions" in gitlab
    own = instructions("git@git.example.org:team/images.git")
    assert len(own) == 4 and "https://git.example.org/team/images/settings/keys" in own[2]
    assert "read-only" in instructions("git@bitbucket.org:team/images.git")[0]


# -- server replies ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "stderr", "writing", "kind"),
    [
        (1, b"ERROR: Repository not found.\n", False, RepositoryNotFound),
        (1, b"ERROR: The key you are authenticating with has been marked as read only.\n", True, SshPermissionError),
        (1, b"GitLab: This deploy key does not have write access to this project.\n", True, SshPermissionError),
        (1, b"remote: Permission to org/x.git denied to deploy key\n", True, SshPermissionError),
        (127, b"bash: git-lfs-authenticate: command not found\n", False, CommandMissing),
        (1, b"fatal: git-lfs-authenticate: not found\n", None, CommandMissing),
        (1, b"Invalid command: 'git-lfs-transfer x upload'\n", False, CommandMissing),
        (1, b"fatal: '/x.git' does not appear to be a git repository\n", False, RepositoryNotFound),
        (2, b"", False, ProtocolError),
    ],
)
def test_server_refusals_are_classified(status, stderr, writing, kind):
    command = "git-lfs-authenticate" if writing is None else "git-receive-pack" if writing else "git-upload-pack"
    err = command_failed("host:repo", command, status, stderr, writing=bool(writing))
    assert type(err) is kind
    assert "\n" not in str(err)


def test_parse_git_lfs_authenticate():
    from lfsreg.lfs.ssh import parse_authenticate, remote_path_arg

    now = time.time()
    auth = parse_authenticate(
        b'{"href": "https://lfs.example/o/r.git/info/lfs/", "header": {"Authorization": "RemoteAuth x"}, "expires_in": 60}',
        "https://d/info/lfs",
        now,
        "l",
    )
    assert auth.href == "https://lfs.example/o/r.git/info/lfs" and auth.header == {"Authorization": "RemoteAuth x"}
    assert auth.expires == now + 60 and not auth.expired(now) and auth.expired(now + 56)
    assert "RemoteAuth" not in repr(auth)
    auth = parse_authenticate(b'{"header": {}, "expires_at": "2030-01-01T00:00:00Z"}', "https://d/info/lfs", now, "l")
    assert auth.href == "https://d/info/lfs" and auth.expires == 1893456000.0
    for bad in (b"nope", b"[]", b'{"href": "ftp://x"}', b'{"header": {"a": 1}}', b'{"expires_at": "soon"}'):
        with pytest.raises(LfsregError):
            parse_authenticate(bad, "https://d/info/lfs", now, "l")
    assert remote_path_arg("/org/images.git") == "/org/images.git"
    assert remote_path_arg("/org/my images.git") == "'/org/my images.git'"


def test_batch_client_uses_and_refreshes_authenticated_headers():
    import requests
    from fault_lfs import FaultLfsServer

    from lfsreg.errors import AuthenticationError
    from lfsreg.formats.lfs_pointer import LfsObject
    from lfsreg.lfs.batch import BatchClient

    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    calls = []

    def source(operation: str, refresh: bool) -> tuple[str, dict[str, str]]:
        calls.append((operation, refresh))
        return server.endpoint("team/repo.git"), {"Authorization": good if refresh else "Basic bm9wZTpub3Bl"}

    with FaultLfsServer(credentials=("alice", "s3cret")) as server:
        oid = server.add_object(b"layer")
        client = BatchClient("https://placeholder.invalid/x", requests.Session(), [], header_source=source)
        (item,) = client.batch("download", [LfsObject(oid, 5)])
        assert "download" in item.actions
        assert calls == [("download", False), ("download", True)]
        client = BatchClient(
            "https://placeholder.invalid/x",
            requests.Session(),
            [],
            header_source=lambda op, refresh: (server.endpoint("team/repo.git"), {}),
        )
        with pytest.raises(AuthenticationError) as info:
            client.batch("download", [LfsObject(oid, 5)])
        assert "git-lfs-authenticate" in info.value.hint
