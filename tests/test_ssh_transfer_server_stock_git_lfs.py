"""The project's own ``git-lfs-transfer`` test server (tests/peers/lfs_transfer_server.py) serves stock git-lfs.

Before, it demanded the batch ``token`` back in ``put-object``; stock git-lfs 3.3 sends only
``size`` there, so every upload by stock git-lfs was refused (status 400) and the server was
checked only against lfsreg's own reading of the protocol. Now a missing token is accepted, a
wrong one is still refused, and the server logs what each request carried (``STORE/.requests``),
so lfsreg's passing the tokens back stays checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env, run_git
from imageverify import source_image, verify_docker_archive

pytestmark = pytest.mark.interop

APP = "docker-archive:" + str(fixture("app.docker.tar"))


def _stored(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.iterdir() if not p.name.startswith(".")}


def _requests(store: Path, command: str) -> list[list[str]]:
    """``[[oid, arg, ...], ...]`` of the ``command`` requests the server saw."""
    log = store / ".requests"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1:] for line in lines if line.startswith(command + " ")]


def test_stock_git_lfs_pushes_and_clones_through_it(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name
    genv = sshd_server.git_env(tmp_path / "git", key)
    work = tmp_path / "work"
    run_git(["init", "-q", str(work)], cwd=tmp_path, env=genv)
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    files = {"big.bin": os.urandom(300_000), "small.bin": b"tiny\n"}  # big: several pkt-lines of data
    for name, data in files.items():
        (work / name).write_bytes(data)
    run_git(["add", "-A"], cwd=work, env=genv)
    run_git(["commit", "-qm", "lfs files"], cwd=work, env=genv)
    run_git(["remote", "add", "origin", url], cwd=work, env=genv)
    run_git(["push", "-q", "origin", "main"], cwd=work, env=genv)
    oids = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    assert _stored(store) == oids  # uploaded by stock git-lfs through put-object + verify-object
    assert {r[0] for r in _requests(store, "put-object")} == set(oids)
    assert {r[0] for r in _requests(store, "verify-object")} == set(oids)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", url, str(clone)], cwd=tmp_path, env=sshd_server.git_env(tmp_path / "git2", key))
    for name, data in files.items():
        assert (clone / name).read_bytes() == data  # smudged with what get-object sent
    assert {r[0] for r in _requests(store, "get-object")} == set(oids)
    cmds = [c for c in sshd_server.commands() if git_http_repo.name in c]
    assert any(c.startswith("git-lfs-transfer") and c.endswith(" upload") for c in cmds)
    assert not any(c.startswith("git-lfs-authenticate") for c in cmds)


def test_lfsreg_reads_what_stock_git_lfs_uploaded_and_passes_tokens_back(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path / "lfsreg", sshd=sshd_server, key=key)))
    puts = _requests(store, "put-object")
    assert len(puts) == 3
    for oid, *args in puts:  # lfsreg hands back the id and token the batch answer gave it
        assert f"token=t-{oid[:6]}" in args and f"id={oid[:8]}" in args, args
    genv = sshd_server.git_env(tmp_path / "git", key)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", url, str(clone)], cwd=tmp_path, env=genv)
    pushed = _stored(store)
    # the server loses every object; stock git-lfs uploads them again from its clone
    for oid in pushed:
        (store / oid).unlink()
    (store / ".requests").unlink()
    run_git(["lfs", "push", "--all", "origin"], cwd=clone, env=genv)
    assert _stored(store) == pushed
    assert {r[0] for r in _requests(store, "put-object")} == set(pushed)
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    )
    (image,) = verify_docker_archive(out)
    assert image.diff_ids == source_image("oci:" + str(fixture("app.oci")) + ":1.0").diff_ids
    shutil.rmtree(clone)


def test_a_wrong_token_is_still_refused(sshd_server, git_http_repo, tmp_path):
    """The server is lenient about a missing token only: a token that is not the one it handed out is refused."""
    from lfsreg.errors import LfsregError
    from lfsreg.formats.lfs_pointer import LfsObject
    from lfsreg.lfs.sshtransfer import Session
    from lfsreg.ssh.connection import SshConnection
    from lfsreg.ssh.settings import SshSettings
    from lfsreg.ssh.url import parse_ssh_url

    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    data = b"a blob with a wrong token\n"
    obj = LfsObject(hashlib.sha256(data).hexdigest(), len(data))
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    url = parse_ssh_url(sshd_server.url(git_http_repo))
    settings = SshSettings(identity=str(key.path), known_hosts=str(sshd_server.known_hosts))
    conn = SshConnection(url, settings)
    try:
        session = Session(conn, url.path, "upload", "test")
        assert session.batch([obj], None)[obj.oid][0] == "upload"
        with pytest.raises(LfsregError, match="status 400"):
            session.put(obj, str(blob), ["token=not-yours"], lambda n: None)
        session.close()
    finally:
        conn.close()
    assert obj.oid not in _stored(sshd_server.transfer_store / git_http_repo.name)
