"""Remote registries over SSH against Debian's OpenSSH sshd started on 127.0.0.1 (tests/peers/).

The sshd serves the same bare repositories as the HTTPS tests; each key is a deploy key for
one repository (a forced command allowing git-upload-pack, git-receive-pack unless read-only,
and git-lfs-authenticate, which hands out the nginx + giftless LFS endpoint with its Basic
credentials, or git-lfs-transfer). lfsreg runs no ssh binary: paramiko in-process.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import NO_SPAWN, assert_error, assert_ok, fixture, python_only_path, run_cli
from gitenv import cli_env, require_tool, run_git
from imageverify import source_image, verify_docker_archive, verify_oci_archive, verify_oci_layout

from lfsreg.registry import layout

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))
BASE = "docker-archive:" + str(fixture("base.docker.tar"))


def _lfs_objects(repo) -> set[str]:
    return {p.name for p in repo.lfs_storage.iterdir()} if repo.lfs_storage and repo.lfs_storage.exists() else set()


def _host_fingerprint(sshd) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{sshd.host_key}.pub"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


# -- round trips ----------------------------------------------------------------------------------
SOURCES = [
    (APP, "acme/app:1.0"),
    ("oci:" + str(fixture("app.oci")) + ":1.0", "acme/app-oci:1.0"),
    ("oci-archive:" + str(fixture("app.oci.tar")) + ":1.0", "acme/app-ociarchive:1.0"),
]


def test_roundtrip_every_format_through_ssh_one_connection_each(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    url = sshd_server.url(git_http_repo)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    for source, name in SOURCES:
        before = sshd_server.logins()
        assert_ok(run_cli("push", url, source, "--tag", name, env=env))
        assert sshd_server.logins() - before == 1  # git fetch, LFS auth and git push share one connection
    assert _lfs_objects(git_http_repo)  # the layers went to giftless through git-lfs-authenticate's href
    fresh = cli_env(tmp_path / "fresh", sshd=sshd_server, key=key)
    for source, name in SOURCES:
        src = source_image(source.replace("oci-archive:", "oci:").replace("app.oci.tar", "app.oci"))
        out = tmp_path / name.replace("/", "_").replace(":", "_")
        before = sshd_server.logins()
        assert_ok(run_cli("pull", url, name, "-o", f"docker-archive:{out}.tar", env=fresh))
        assert sshd_server.logins() - before == 1
        (image,) = verify_docker_archive(f"{out}.tar")
        assert image.config_digest == src.config_digest and image.diff_ids == src.diff_ids
        assert_ok(run_cli("pull", url, name, "-o", f"oci:{out}.oci", env=fresh))
        (image,) = verify_oci_layout(f"{out}.oci")
        assert image.config_digest == src.config_digest and image.diff_ids == src.diff_ids
        assert_ok(run_cli("pull", url, name, "-o", f"oci-archive:{out}.oci.tar", env=fresh))
        (archived,) = verify_oci_archive(f"{out}.oci.tar")
        assert (archived.manifest_digest, archived.config_digest, archived.diff_ids) == (
            image.manifest_digest,
            src.config_digest,
            src.diff_ids,
        )
    auths = [c for c in sshd_server.commands() if c.startswith("git-lfs-authenticate") and git_http_repo.name in c]
    assert auths and all(c.endswith((" upload", " download")) for c in auths)


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_ecdsa_and_rsa_keys(sshd_server, git_http_repo, tmp_path, key_type):
    key = sshd_server.add_key(git_http_repo, key_type=key_type)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, env=env))
    proc = run_cli("images", sshd_server.url(git_http_repo), env=env)
    assert_ok(proc)
    assert "acme/base" in proc.stdout


def test_key_text_identity_option_default_key_and_passphrase(sshd_server, git_http_repo, tmp_path):
    url = sshd_server.url(git_http_repo)
    key = sshd_server.add_key(git_http_repo)
    text = key.path.read_text()
    # the key itself in LFSREG_SSH_KEY, as CI secrets hand it over (also with literal \n escapes)
    assert_ok(run_cli("push", url, BASE, env=cli_env(tmp_path / "a", sshd=sshd_server, LFSREG_SSH_KEY=text)))
    assert_ok(run_cli("images", url, env=cli_env(tmp_path / "b", sshd=sshd_server, LFSREG_SSH_KEY=text.strip().replace("\n", "\\n"))))
    # --identity FILE
    assert_ok(run_cli("--identity", key.path, "images", url, env=cli_env(tmp_path / "c", sshd=sshd_server)))
    # ~/.ssh/id_ed25519 when nothing is given
    env = cli_env(tmp_path / "d", sshd=sshd_server)
    ssh_dir = Path(env["HOME"]) / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_text(text)
    (ssh_dir / "id_ed25519").chmod(0o600)
    assert_ok(run_cli("images", url, env=env))
    # an encrypted key: its passphrase from LFSREG_SSH_PASSPHRASE
    locked = sshd_server.add_key(git_http_repo, passphrase="correct horse 42")
    proc = run_cli("images", url, env=cli_env(tmp_path / "e", sshd=sshd_server, key=locked))
    assert_error(proc, 1, "encrypted")
    assert "LFSREG_SSH_PASSPHRASE" in proc.stderr
    proc = run_cli("images", url, env=cli_env(tmp_path / "e", sshd=sshd_server, key=locked, LFSREG_SSH_PASSPHRASE="wrong"))
    assert_error(proc, 1, "passphrase")
    proc = run_cli("images", url, env=cli_env(tmp_path / "e", sshd=sshd_server, key=locked, LFSREG_SSH_PASSPHRASE="correct horse 42"))
    assert_ok(proc)
    assert "acme/base" in proc.stdout  # the unlocked key read the registry pushed above


def test_keys_from_ssh_agent(sshd_server, git_http_repo, tmp_path):
    require_tool("ssh-agent")
    key = sshd_server.add_key(git_http_repo, key_type="ecdsa")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = cli_env(tmp_path, sshd=sshd_server, SSH_AUTH_SOCK=str(sock))
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        for path in (other, key.path):  # an unrelated key first: lfsreg offers each in turn
            subprocess.run(["ssh-add", "-q", str(path)], env=env, check=True, capture_output=True)
        key.path.unlink()  # from now on only the agent holds the key
        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{key.path}.pub"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        accepted = f"Accepted publickey for {sshd_server.login} from 127.0.0.1"

        def logins_with_key() -> int:
            return sum(
                1 for line in sshd_server.log.read_text(errors="replace").splitlines() if accepted in line and line.endswith(fingerprint)
            )

        before = logins_with_key()
        assert git_http_repo.main() is None
        assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, "--tag", "agent/base:1", env=env))
        assert logins_with_key() > before  # sshd accepted the agent's key
        assert git_http_repo.main() is not None and _lfs_objects(git_http_repo)  # the remote changed
        proc = run_cli("images", sshd_server.url(git_http_repo), env=env)
        assert_ok(proc)
        assert "agent/base" in proc.stdout
    finally:
        agent.terminate()
        agent.wait(10)


def test_known_hosts_in_home_with_hashed_entries(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    del env["LFSREG_SSH_KNOWN_HOSTS"]
    ssh_dir = Path(env["HOME"]) / ".ssh"
    ssh_dir.mkdir()
    known = ssh_dir / "known_hosts"
    known.write_text("@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBadKey\n" + sshd_server.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text() and "127.0.0.1" not in known.read_text()
    assert git_http_repo.main() is None
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, env=env))
    assert git_http_repo.main() is not None  # the host was recognised and the push landed


# -- refusals: nothing is written to the remote ------------------------------------------------------
def test_unknown_host_is_refused_with_fingerprint_and_line(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = run_cli("push", sshd_server.url(git_http_repo), APP, env=cli_env(tmp_path, sshd=sshd_server, key=key, known_hosts=empty))
    line = assert_error(proc, 1, "unknown SSH host key")
    assert _host_fingerprint(sshd_server) in line
    assert f"{sshd_server.known_hosts_name} {sshd_server.host_public}" in proc.stderr  # the line to add
    assert empty.read_text() == ""
    assert git_http_repo.main() is None and not _lfs_objects(git_http_repo)


def test_accept_new_records_the_host_then_checks_it(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    known = tmp_path / "ssh" / "known_hosts"  # its directory does not exist yet
    env = cli_env(tmp_path, sshd=sshd_server, key=key, known_hosts=known)
    assert_ok(run_cli("--accept-new-host-key", "push", sshd_server.url(git_http_repo), BASE, env=env))
    assert known.read_text() == f"{sshd_server.known_hosts_name} {sshd_server.host_public}\n"
    assert_ok(run_cli("images", sshd_server.url(git_http_repo), env=env))  # now known: no flag needed
    env2 = cli_env(tmp_path / "two", sshd=sshd_server, key=key, known_hosts=tmp_path / "kh2", LFSREG_SSH_ACCEPT_NEW="1")
    assert_ok(run_cli("images", sshd_server.url(git_http_repo), env=env2))
    assert sshd_server.host_public in (tmp_path / "kh2").read_text()


def test_changed_host_key_is_always_refused(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd_server.known_hosts_name} {other}\n")
    env = cli_env(tmp_path, sshd=sshd_server, key=key, known_hosts=known)
    for extra in ([], ["--accept-new-host-key"]):
        proc = run_cli(*extra, "push", sshd_server.url(git_http_repo), APP, env=env)
        line = assert_error(proc, 1, "CHANGED")
        assert _host_fingerprint(sshd_server) in line
    assert known.read_text() == f"{sshd_server.known_hosts_name} {other}\n"
    assert git_http_repo.main() is None and not _lfs_objects(git_http_repo)


def test_key_of_another_repository_is_refused(sshd_server, git_http_server, git_http_repo, tmp_path):
    other = git_http_server.create_repo(git_http_repo.name + "-other")
    key = sshd_server.add_key(other)  # a deploy key of the other repository
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    proc = run_cli("push", sshd_server.url(git_http_repo), APP, env=env)
    assert_error(proc, 1, "repository not found")
    assert_ok(run_cli("push", sshd_server.url(other), BASE, env=env))  # it works where it belongs
    assert git_http_repo.main() is None and not _lfs_objects(git_http_repo)


def test_read_only_key_cannot_push_and_nothing_changes(sshd_server, git_http_repo, tmp_path):
    writer = sshd_server.add_key(git_http_repo)
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, env=cli_env(tmp_path / "w", sshd=sshd_server, key=writer)))
    before, objects = git_http_repo.main(), _lfs_objects(git_http_repo)
    reader = sshd_server.add_key(git_http_repo, access="ro")
    env = cli_env(tmp_path / "r", sshd=sshd_server, key=reader)
    assert_ok(run_cli("pull", sshd_server.url(git_http_repo), "acme/base:1.0", "-o", f"oci:{tmp_path / 'b.oci'}", env=env))
    proc = run_cli("push", sshd_server.url(git_http_repo), APP, env=env)  # refused at git-lfs-authenticate upload
    assert_error(proc, 1, "permission denied")
    assert "write access" in proc.stderr
    proc = run_cli("rm", sshd_server.url(git_http_repo), "acme/base:1.0", env=env)  # a git-only push: receive-pack refused
    assert_error(proc, 1, "permission denied")
    assert git_http_repo.main() == before and _lfs_objects(git_http_repo) == objects


def test_unauthorised_key_is_refused_without_showing_it(sshd_server, git_http_repo, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    text = (tmp_path / "stranger").read_text()
    secret_line = text.splitlines()[1]
    env = cli_env(tmp_path, sshd=sshd_server, LFSREG_SSH_KEY=text)
    for argv in (["images", sshd_server.url(git_http_repo)], ["-v", "push", sshd_server.url(git_http_repo), APP]):
        proc = run_cli(*argv, env=env)
        assert proc.returncode == 1
        assert secret_line not in proc.stderr + proc.stdout and "PRIVATE KEY" not in proc.stderr + proc.stdout
        assert "authentication refused" in proc.stderr
    assert_error(run_cli("images", sshd_server.url(git_http_repo), env=env), 1, "authentication refused")
    assert git_http_repo.main() is None


def test_usage_errors_exit_2(sshd_server, tmp_path):
    env = cli_env(tmp_path, sshd=sshd_server)
    assert_error(run_cli("images", "ssh://127.0.0.1/", env=env), 2, "no repository path")
    assert_error(run_cli("--identity", tmp_path / "nope", "images", sshd_server.url("t/x"), env=env), 2, "not found")
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key\n")
    assert_error(run_cli("--identity", garbage, "images", sshd_server.url("t/x"), env=env), 2, "not a private key")


# -- LFS: authenticate expiry, pure SSH, HTTPS fallback -----------------------------------------------
def test_lfs_authentication_is_renewed_when_it_expires(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs_expires_in=1)  # expired on arrival (5 s margin)
    before = len(sshd_server.commands())
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    auths = [c for c in sshd_server.commands()[before:] if c.startswith("git-lfs-authenticate")]
    assert len(auths) >= 2  # one per batch call: missing() and upload()
    key2 = sshd_server.add_key(git_http_repo)
    before = len(sshd_server.commands())
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, env=cli_env(tmp_path / "b", sshd=sshd_server, key=key2)))
    assert len([c for c in sshd_server.commands()[before:] if c.startswith("git-lfs-authenticate")]) == 1


def test_pure_ssh_lfs_with_git_lfs_transfer(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("--transfers", "2", "push", url, APP, env=cli_env(tmp_path, sshd=sshd_server, key=key)))
    store = sshd_server.transfer_store / git_http_repo.name
    src = source_image("oci:" + str(fixture("app.oci")) + ":1.0")
    stored = {p.name for p in store.iterdir() if not p.name.startswith(".")}
    for path in stored:
        assert hashlib.sha256((store / path).read_bytes()).hexdigest() == path
    assert len(stored) == 3 and not _lfs_objects(git_http_repo)
    out = tmp_path / "app.tar"
    before = sshd_server.logins()
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    assert sshd_server.logins() - before == 1
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == src.diff_ids
    cmds = sshd_server.commands()
    assert any(c.startswith("git-lfs-transfer") and c.endswith(" upload") for c in cmds)
    assert any(c.startswith("git-lfs-transfer") and c.endswith(" download") for c in cmds)


def test_without_lfs_over_ssh_the_https_endpoint_is_used(sshd_server, git_http_server, git_http_repo, tmp_path, monkeypatch):
    import lfsreg
    from lfsreg.api import RemoteOptions
    from lfsreg.lfs.retry import RetryPolicy
    from lfsreg.ssh.settings import SshSettings

    key = sshd_server.add_key(git_http_repo, lfs="none")
    url = sshd_server.url(git_http_repo)
    for name, value in cli_env(tmp_path, sshd=sshd_server).items():
        monkeypatch.setenv(name, value)
    ssh = SshSettings(identity=str(key.path), known_hosts=str(sshd_server.known_hosts))
    options = RemoteOptions(ssh=ssh, policy=RetryPolicy(max_retries=0, sleep=lambda s: None))
    with socket.socket() as probe:  # the precondition: nothing listens on https://127.0.0.1:443
        assert probe.connect_ex(("127.0.0.1", 443)) != 0, "something listens on 127.0.0.1:443; this test needs it closed"
    with pytest.raises(lfsreg.LfsregError) as info:
        lfsreg.Registry(url, options=options).push([APP])
    assert f"https://127.0.0.1/{git_http_repo.name}.git/info/lfs" in str(info.value)  # what git-lfs derives
    assert git_http_repo.main() is None
    cmds = [c for c in sshd_server.commands() if git_http_repo.name in c]
    assert any(c.startswith("git-lfs-authenticate") for c in cmds) and any(c.startswith("git-lfs-transfer") for c in cmds)
    env = cli_env(tmp_path, git_http_server, sshd=sshd_server, key=key, LFSREG_LFS_URL=git_http_repo.lfs_url)
    assert_ok(run_cli("push", url, APP, env=env))  # an explicit endpoint, with the usual credentials
    assert _lfs_objects(git_http_repo)


# -- interop with stock git + git-lfs over the same sshd ----------------------------------------------
def test_stock_git_lfs_over_ssh_reads_what_lfsreg_pushed_and_back(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    url = sshd_server.url(git_http_repo)
    genv = sshd_server.git_env(tmp_path / "git", key)
    env = cli_env(tmp_path, sshd=sshd_server, key=key)
    assert_ok(run_cli("push", url, APP, env=env))
    run_git(["clone", "-q", url, str(tmp_path / "clone")], cwd=tmp_path, env=genv)
    clone = tmp_path / "clone"
    assert run_git(["status", "--porcelain"], cwd=clone, env=genv).stdout == b""
    layers = [p for p in (clone / "layers").rglob("*") if p.is_file()]
    assert len(layers) == 3
    for p in layers:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name  # real content, fetched by git-lfs over SSH
    digest = (clone / f"{layout.NEW.tags_dir('acme/app')}/1.0").read_text()
    (clone / f"{layout.NEW.tags_dir('acme/app')}/from-git").write_text(digest)
    run_git(["add", "-A"], cwd=clone, env=genv)
    run_git(["commit", "-qm", "tag from git"], cwd=clone, env=genv)
    run_git(["push", "-q", "origin", "main"], cwd=clone, env=genv)
    fresh = cli_env(tmp_path / "fresh", sshd=sshd_server, key=key)
    assert_ok(run_cli("pull", url, "acme/app:from-git", "-o", f"docker-archive:{tmp_path / 'g.tar'}", env=fresh))
    verify_docker_archive(tmp_path / "g.tar")
    assert_ok(run_cli("push", url, BASE, env=env))  # lfsreg on top of git's commit, then git sees it
    run_git(["pull", "-q", "--ff-only"], cwd=clone, env=genv)
    run_git(["lfs", "pull"], cwd=clone, env=genv)
    assert (clone / f"{layout.NEW.tags_dir('acme/base')}/1.0").exists()
    assert run_git(["lfs", "fsck"], cwd=clone, env=genv).returncode == 0


# -- no binaries -----------------------------------------------------------------------------------
def test_ssh_remote_without_ssh_or_git_on_path(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    python = python_only_path(tmp_path)
    env = cli_env(tmp_path, sshd=sshd_server, key=key, PATH=str(python.parent), TMPDIR=str(tmp_path))
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def run(*args):
        proc = subprocess.run(
            [str(python), "-c", NO_SPAWN, *(str(a) for a in args)], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert "SPAWN ATTEMPT" not in proc.stderr, proc.stderr
        assert_ok(proc)
        return proc

    url = sshd_server.url(git_http_repo)
    run("push", url, APP)
    run("push", url, "oci:" + str(fixture("tool.oci")) + ":2.0", "--tag", "acme/tool:2.0")
    env["LFSREG_CACHE"] = str(tmp_path / "cold")
    run("pull", url, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'app.tar'}")
    verify_docker_archive(tmp_path / "app.tar")
    assert "acme/tool" in run("images", url).stdout


# -- keygen ----------------------------------------------------------------------------------------
def test_keygen_key_works_with_openssh_paramiko_and_the_server(sshd_server, git_http_repo, tmp_path):
    import paramiko

    out = tmp_path / "deploy"
    proc = run_cli("keygen", "--out", out, "--repo", "git@github.com:acme/images.git", env=cli_env(tmp_path, sshd=sshd_server))
    assert_ok(proc)
    assert out.stat().st_mode & 0o777 == 0o600
    public = (tmp_path / "deploy.pub").read_text().strip()
    assert public in proc.stdout and "https://github.com/acme/images/settings/keys/new" in proc.stdout
    assert "Allow write access" in proc.stdout and "PRIVATE KEY" not in proc.stdout
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert derived[:2] == public.split()[:2]
    assert paramiko.Ed25519Key.from_private_key_file(str(out)).get_base64() == public.split()[1]
    sshd_server.authorize(public, git_http_repo)
    env = cli_env(tmp_path, sshd=sshd_server, LFSREG_SSH_KEY=out.read_text())
    assert_ok(run_cli("push", sshd_server.url(git_http_repo), BASE, env=env))
    assert_error(run_cli("keygen", "--out", out, env=env), 1, "already exists")
    proc = run_cli("keygen", "--out", tmp_path / "generic", env=env)
    for host in ("GitHub", "GitLab", "Gitea", "Bitbucket"):
        assert re.search(rf"^  {host}:", proc.stdout, re.M), proc.stdout
