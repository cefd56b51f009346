"""The registry's trust policy: which keys must sign which images, kept in the registry itself. No I/O.

::

    lfsreg-trust.json                   the policy (exact bytes are signed)
    lfsreg-trust.sig                    {"keyId": …, "signature": base64}: a key the previous policy trusted signed it
    trust/sha256/<hh>/<hex>             every earlier policy, by the digest of its bytes
    trust/sha256/<hh>/<hex>.sig         ... and its signature

A policy is ``{"version": 1, "previous": "sha256:<hex>" | null, "rules": [{"images": GLOB,
"keys": [PEM, …]}, …]}``. An image ``NAME`` matches a rule when ``fnmatch`` (case-sensitive)
says ``NAME`` matches ``GLOB``; a pull of a matching image needs a valid signature by one of
the keys of the rules it matches.

**The chain.** Each policy but the first names the digest of the one it replaced, and is
signed by a key that one trusted (:func:`check_chain`), so a commit that edits the policy
without such a key (a forged ``lfsreg-trust.json``, a new key added by hand) breaks the chain
and every pull is refused. The first policy (``previous: null``) is trusted on first use: each
client keeps the digest of the first policy it saw per registry (its *root*), and a policy
whose chain ends at another root (the whole chain replaced) is refused too. So what protects
the policy is the signing keys it names, plus, for a client that never saw the registry
before, whoever may push to the branch: the host's branch protection (docs/format.md).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..digest import Digest
from ..errors import InvalidReference, SignatureError, UsageError
from ..manifest import dump_json
from .keys import PrivateKey, PublicKey, load_public

POLICY = "lfsreg-trust.json"
POLICY_SIG = "lfsreg-trust.sig"
HISTORY = "trust"
#: More policy versions than this in one chain is not a policy anyone wrote by hand.
MAX_CHAIN = 10000

# Reads a file of the tree (None: absent).
Reader = Callable[[str], "bytes | None"]


def history_path(digest: Digest) -> str:
    """Where an earlier policy's bytes live (its signature: this path + ``.sig``)."""
    return f"{HISTORY}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


@dataclass(frozen=True)
class Rule:
    """Images matching ``images`` (a glob over names) need a signature by one of ``keys``."""

    images: str
    keys: tuple[PublicKey, ...]

    def matches(self, name: str) -> bool:
        """True if image ``name`` falls under this rule."""
        return fnmatch.fnmatchcase(name, self.images)


@dataclass(frozen=True)
class Policy:
    """A parsed policy: its rules and the digest of the one it replaced (``None``: the first)."""

    rules: tuple[Rule, ...]
    previous: Digest | None

    def rules_for(self, name: str) -> list[Rule]:
        """The rules image ``name`` matches."""
        return [r for r in self.rules if r.matches(name)]

    def all_keys(self) -> list[PublicKey]:
        """Every key of every rule (one per key id)."""
        seen: dict[str, PublicKey] = {}
        for rule in self.rules:
            for key in rule.keys:
                seen.setdefault(key.key_id, key)
        return list(seen.values())


def parse_policy(data: bytes, what: str) -> Policy:
    """Parse a policy file; :class:`SignatureError` if it is damaged (a registry's policy is never guessed at)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SignatureError(f"{what}: the trust policy is not JSON") from None
    if not isinstance(obj, dict) or obj.get("version") != 1 or not isinstance(obj.get("rules"), list):
        raise SignatureError(f"{what}: the trust policy is not a version 1 policy")
    previous = obj.get("previous")
    try:
        prev = Digest.parse(previous) if previous is not None else None
    except (InvalidReference, TypeError, AttributeError):
        raise SignatureError(f"{what}: the trust policy's previous is not a digest") from None
    rules = []
    for i, rule in enumerate(obj["rules"]):
        if not isinstance(rule, dict) or not isinstance(rule.get("images"), str) or not isinstance(rule.get("keys"), list):
            raise SignatureError(f"{what}: trust policy rule {i} is not {{images, keys}}")
        keys = []
        for pem in rule["keys"]:
            if not isinstance(pem, str):
                raise SignatureError(f"{what}: trust policy rule {i} has a key that is not PEM text")
            try:
                keys.append(load_public(pem.encode(), f"{what}: rule {i}"))
            except UsageError as exc:
                raise SignatureError(str(exc)) from None
        rules.append(Rule(rule["images"], tuple(keys)))
    return Policy(tuple(rules), prev)


def encode_policy(rules: Sequence[Rule], previous: Digest | None) -> bytes:
    """The bytes of a policy file (indented: people read it in ``git show``)."""
    body = {
        "version": 1,
        "previous": str(previous) if previous is not None else None,
        "rules": [{"images": r.images, "keys": [k.pem for k in r.keys]} for r in rules],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def sign_policy(key: PrivateKey, data: bytes) -> bytes:
    """The signature file of policy bytes ``data``."""
    return dump_json({"keyId": key.public.key_id, "signature": base64.b64encode(key.sign(data)).decode()}) + b"\n"


def _signed_by(sig: bytes | None, data: bytes, trusted: Sequence[PublicKey]) -> bool:
    if sig is None:
        return False
    try:
        obj = json.loads(sig)
        signature = base64.b64decode(obj["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return False
    return any(k.verify(signature, data) for k in trusted)


@dataclass(frozen=True)
class Verified:
    """A policy whose chain checked out: the policy, its bytes' digest, and its chain's root digest."""

    policy: Policy
    digest: Digest
    root: Digest


def check_chain(read: Reader, label: str) -> Verified | None:
    """The registry's policy, its chain checked (see the module docstring); ``None`` if it has none.

    Raises:
        SignatureError: a damaged policy, a link missing, or a policy not signed by a key the
            one before it trusted.
    """
    data = read(POLICY)
    if data is None:
        if read(POLICY_SIG) is not None:
            raise SignatureError(f"{label}: the trust policy was removed ({POLICY_SIG} is still there)")
        return None
    current = Digest.of_bytes(data)
    head = policy = parse_policy(data, label)
    sig_path, digest = POLICY_SIG, current
    for _ in range(MAX_CHAIN):
        previous = policy.previous
        if previous is None:
            return Verified(head, current, digest)
        older = read(history_path(previous))
        if older is None or Digest.of_bytes(older) != previous:
            raise SignatureError(f"{label}: the trust policy's previous version {previous} is missing or damaged")
        before = parse_policy(older, label)
        if not _signed_by(read(sig_path), data, before.all_keys()):
            raise SignatureError(
                f"{label}: the trust policy {digest} is not signed by a key its previous version trusted",
                hint="lfsreg-trust.json was changed without a key it trusted: revert that commit (git revert), or re-sign the change",
            )
        data, policy, digest, sig_path = older, before, previous, history_path(previous) + ".sig"
    raise SignatureError(f"{label}: the trust policy's chain is longer than {MAX_CHAIN} versions")
