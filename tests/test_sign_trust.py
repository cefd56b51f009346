"""``lfsreg trust``: the trust policy kept in the registry, enforced on every pull, and what protects it.

Every command runs with its own ``LFSREG_CACHE``: the machine's pin of the policy's root lives there.
"""

from __future__ import annotations

import json

import pytest
from conftest import assert_error, assert_ok, commit_count, run_cli, snapshot, tree_files
from signing_help import publish, signed_registry

from lfsreg.signing import policy as fmt


class Machine:
    """One user's machine: its own cache (and so its own pin of each registry's policy root)."""

    def __init__(self, cache):
        self.env = {"LFSREG_CACHE": str(cache)}

    def __call__(self, *args, **kw):
        return run_cli(*args, env={**self.env, **kw.pop("env", {})}, **kw)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("trust-keys")
    for name in ("owner", "second", "attacker"):
        assert_ok(run_cli("keygen", "--sign", "--out", base / name))
    return base


@pytest.fixture
def repo(tmp_path, keys):
    """acme/app:1.0 (signed by owner), acme/tool:2.0 (unsigned), other/x:1 (unsigned); policy: acme/* needs owner's key."""
    path = signed_registry(tmp_path / "reg.git", ("app.oci:1.0", "acme/app:1.0"), ("tool.oci", "acme/tool:2.0"), ("tool.oci", "other/x:1"))
    me = Machine(tmp_path / "cache")
    assert_ok(me("sign", path, "acme/app:1.0", "--key", keys / "owner"))
    assert_ok(me("trust", path, "add", "acme/*", keys / "owner.pub"))
    return path


def _pull(machine, repo, image, out, *extra):
    return machine("pull", repo, image, "-o", f"oci:{out}", *extra)


def _refused(machine, repo, image, tmp_path, *needles):
    state = snapshot(repo)
    out = tmp_path / "refused"
    line = assert_error(_pull(machine, repo, image, out), 1, *needles)
    assert not out.exists() and snapshot(repo) == state
    return line


def test_policy_is_enforced_on_every_pull(repo, tmp_path):
    me = Machine(tmp_path / "cache")
    assert_ok(_pull(me, repo, "acme/app:1.0", tmp_path / "a"))
    line = _refused(me, repo, "acme/tool:2.0", tmp_path, "acme/tool@sha256:", "trust policy", "'acme/*'")
    assert "has none" in line
    assert_ok(_pull(me, repo, "other/x:1", tmp_path / "b"))  # no rule names it
    someone_else = Machine(tmp_path / "other-cache")  # any user of the registry
    _refused(someone_else, repo, "acme/tool:2.0", tmp_path, "acme/tool@sha256:")
    assert_ok(_pull(someone_else, repo, "acme/tool:2.0", tmp_path / "c", "--insecure-skip-signatures"))


def test_list_and_json(repo, tmp_path, keys):
    me = Machine(tmp_path / "cache")
    proc = me("trust", repo, "list", "--format", "json")
    assert_ok(proc)
    info = json.loads(proc.stdout)
    assert [r["images"] for r in info["rules"]] == ["acme/*"]
    assert info["root"] == info["policy"] == info["pinned"]
    proc = me("trust", repo, "list")
    assert "acme/*" in proc.stdout and "sha256:" in proc.stdout


def test_changes_need_a_key_the_policy_trusts(repo, tmp_path, keys):
    me = Machine(tmp_path / "cache")
    state = snapshot(repo)
    assert_error(me("trust", repo, "add", "acme/*", keys / "second.pub"), 2, "needs a key it trusts")
    assert_error(me("trust", repo, "add", "acme/*", keys / "second.pub", "--key", keys / "attacker"), 2, "not one the trust policy trusts")
    assert snapshot(repo) == state
    before = commit_count(repo)
    proc = me("trust", repo, "add", "acme/*", keys / "second.pub", "--key", keys / "owner", "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["changed"] and commit_count(repo) == before + 1
    files = tree_files(repo, "")
    assert fmt.POLICY_SIG in files and any(p.startswith(f"{fmt.HISTORY}/sha256/") for p in files)  # the old version kept
    assert_ok(me("sign", repo, "acme/tool:2.0", "--key", keys / "second"))
    assert_ok(_pull(me, repo, "acme/tool:2.0", tmp_path / "t"))  # second's key counts now
    before = commit_count(repo)
    assert_ok(me("trust", repo, "add", "acme/*", keys / "second.pub", "--key", keys / "second"))  # no change: no commit
    assert commit_count(repo) == before
    assert_error(me("trust", repo, "remove", "nope/*", "--key", keys / "second"), 2, "no rule")
    assert_ok(me("trust", repo, "remove", "acme/*", keys / "owner.pub", "--key", keys / "second"))
    _refused(me, repo, "acme/app:1.0", tmp_path, "acme/app@sha256:", "not signed by a trusted key")  # owner's alone no longer counts
    assert_ok(me("trust", repo, "remove", "acme/*", "--key", keys / "second"))  # the rule goes
    assert_ok(_pull(me, repo, "acme/app:1.0", tmp_path / "after"))


def test_policy_edited_by_someone_without_the_old_key(repo, tmp_path, keys):
    """The attacker can push to the branch, not sign as the owner: every pull is refused."""
    me = Machine(tmp_path / "cache")
    assert_ok(me("trust", repo, "add", "other/*", keys / "owner.pub", "--key", keys / "owner"))  # the policy's second version
    assert_ok(me("sign", repo, "acme/tool:2.0", "--key", keys / "attacker"))
    data = tree_files(repo, fmt.POLICY)[fmt.POLICY]
    doc = json.loads(data)
    doc["rules"][0]["keys"].append((keys / "attacker.pub").read_text())
    publish(repo, {fmt.POLICY: json.dumps(doc, indent=2).encode()}, "trust attacker")
    stranger = Machine(tmp_path / "fresh")  # no pin needed: the broken link shows on any machine
    for machine in (me, stranger):
        for image in ("acme/tool:2.0", "acme/app:1.0", "other/x:1"):
            _refused(machine, repo, image, tmp_path, "not signed by a key its previous version trusted")
    assert_error(me("trust", repo, "add", "x/*", keys / "attacker.pub", "--key", keys / "owner"), 1, "not signed by a key")


def test_policy_edit_signed_by_the_attackers_own_key(repo, tmp_path, keys):
    from lfsreg.api import load_signing_key

    me = Machine(tmp_path / "cache")
    assert_ok(me("trust", repo, "add", "acme/*", keys / "second.pub", "--key", keys / "owner"))  # a chain of two
    doc = json.loads(tree_files(repo, fmt.POLICY)[fmt.POLICY])
    doc["rules"][0]["keys"] = [(keys / "attacker.pub").read_text()]
    data = json.dumps(doc, indent=2).encode()
    publish(repo, {fmt.POLICY: data, fmt.POLICY_SIG: fmt.sign_policy(load_signing_key(str(keys / "attacker")), data)})
    _refused(me, repo, "acme/app:1.0", tmp_path, "not signed by a key its previous version trusted")


def test_policy_replaced_whole_or_removed(repo, tmp_path, keys):
    """A new root (the chain replaced, or the first version edited) or no policy at all: refused where the old root is pinned."""
    me = Machine(tmp_path / "cache")
    assert_ok(_pull(me, repo, "acme/app:1.0", tmp_path / "pinned"))  # this machine has seen (pinned) the policy
    history = {p: None for p in tree_files(repo, fmt.HISTORY + "/")}
    forged = fmt.encode_policy([], None)  # a fresh root trusting nothing: every image pulls unsigned
    publish(repo, {fmt.POLICY: forged, fmt.POLICY_SIG: None, **history})
    _refused(me, repo, "acme/tool:2.0", tmp_path, "was replaced")
    stranger = Machine(tmp_path / "fresh")  # a machine that never saw the registry trusts what it finds first
    assert_ok(_pull(stranger, repo, "acme/tool:2.0", tmp_path / "fresh-out"))
    publish(repo, {fmt.POLICY: None})
    _refused(me, repo, "acme/tool:2.0", tmp_path, "was removed")
    assert_ok(me("trust", repo, "pin"))  # the owners meant it: this machine follows
    assert_ok(_pull(me, repo, "acme/tool:2.0", tmp_path / "after-pin"))


def test_platform_manifest_of_a_signed_index(tmp_path, keys):
    """Under the policy, a platform manifest asked for by digest counts as signed with its signed index."""
    repo = signed_registry(tmp_path / "reg.git", ("multi.oci:1.0", "acme/multi:1.0"))
    me = Machine(tmp_path / "cache")
    assert_ok(me("trust", repo, "add", "acme/*", keys / "owner.pub"))
    index = json.loads(me("inspect", repo, "acme/multi:1.0", "--format", "json").stdout)
    child = index["images"][0]["manifest"]
    _refused(me, repo, f"acme/multi@{child}", tmp_path, "has none")
    assert_ok(me("sign", repo, "acme/multi:1.0", "--key", keys / "owner"))
    assert_ok(_pull(me, repo, f"acme/multi@{child}", tmp_path / "child"))
    line = assert_error(me("pull", repo, f"acme/multi@{child}", "--verify-key", keys / "owner.pub", "-o", f"oci:{tmp_path / 'x'}"), 1)
    assert "has none" in line  # --verify-key checks the digest asked for, as cosign verify does
