"""The trust policy at work: reading it (chain checked, root pinned), changing it, enforcing it on pulls.

The format and the chain are :mod:`lfsreg.signing.policy`. Here:

* :func:`current` reads a registry's policy with its chain checked, and compares the chain's
  root with the one this machine saw first for that registry (the *pin*, a small JSON file in
  the cache directory, written the first time): a policy replaced whole (another root) or
  removed (none, where a pin exists) is refused.
* :func:`change` writes a new policy in one commit: the first needs no key; every later one
  must be signed by a key the current policy trusts, and keeps the current one (and its
  signature) under ``trust/`` so that any reader can check the link.
* :func:`enforce` is what ``pull`` runs before it writes anything: each image that a rule
  matches needs a valid signature by one of that rule's keys.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Sequence

from ..digest import Digest
from ..errors import SignatureError, UsageError
from ..reference import ImageRef
from ..registry.transaction import Publisher
from ..registry.view import RegistryView
from ..signing import policy as fmt
from ..signing.keys import PrivateKey
from .sign import require_signed_image

PIN_FILE = "trust-roots.json"


def _pin_key(label: str) -> str:
    return os.path.abspath(label) if "://" not in label and os.path.exists(label) else label


def _pins(cache_dir: str) -> dict[str, str]:
    try:
        with open(os.path.join(cache_dir, PIN_FILE), encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(obj, dict) else {}


def pin(cache_dir: str, label: str, root: Digest | None) -> None:
    """Remember ``root`` as the policy root of registry ``label`` on this machine (``None``: forget it).

    Under an advisory lock: two processes pinning at once must not lose each other's pin.
    """
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, PIN_FILE + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pins = _pins(cache_dir)
        if root is None:
            pins.pop(_pin_key(label), None)
        else:
            pins[_pin_key(label)] = str(root)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".trust-roots-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(pins, f, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(cache_dir, PIN_FILE))


def pinned(cache_dir: str, label: str) -> Digest | None:
    """The policy root this machine trusts for ``label``, if it saw one."""
    text = _pins(cache_dir).get(_pin_key(label))
    try:
        return Digest.parse(text) if text else None
    except UsageError:
        return None


def current(view: RegistryView, cache_dir: str | None) -> fmt.Verified | None:
    """The registry's policy (chain checked, root pinned when ``cache_dir``); ``None`` if it has none.

    Raises:
        SignatureError: a broken chain, a root other than the pinned one, a pinned policy removed.
    """
    found = fmt.check_chain(view.snapshot.read, view.label)
    if cache_dir is None:
        return found
    known = pinned(cache_dir, view.label)
    hint = f"if the registry's owners replaced it on purpose, trust the new one with: lfsreg trust {view.label} pin"
    if found is None:
        if known is not None:
            raise SignatureError(f"{view.label}: the trust policy (root {known.short}) was removed", hint=hint)
        return None
    if known is None:
        pin(cache_dir, view.label, found.root)
    elif known != found.root:
        raise SignatureError(
            f"{view.label}: the trust policy was replaced: its chain starts at {found.root.short}, this machine trusted {known.short}",
            hint=hint,
        )
    return found


def enforce(view: RegistryView, refs: Sequence[ImageRef], cache_dir: str | None) -> None:
    """Refuse (:class:`SignatureError`) any of ``refs`` that the policy covers without a valid signature by its keys."""
    found = current(view, cache_dir)
    if found is None:
        return
    for ref in refs:
        for rule in found.policy.rules_for(ref.name):
            require_signed_image(view, ref.name, view.resolve(ref), rule.keys, f"a key the trust policy names for {rule.images!r}")


Edit = Callable[[list[fmt.Rule]], list[fmt.Rule]]


def change(publisher: Publisher, cache_dir: str | None, key: PrivateKey | None, edit: Edit, message: str) -> tuple[str | None, fmt.Policy]:
    """Apply ``edit`` to the policy's rules and commit the new policy (see the module docstring).

    Raises:
        UsageError: a policy exists and ``key`` is missing or not one it trusts.
        SignatureError: the current policy does not check out (nothing is written).
    """
    result: list[fmt.Policy] = []
    root: list[Digest] = []  # set when this change writes the first policy

    def build(view: RegistryView) -> dict[str, bytes | None]:
        found = current(view, cache_dir)
        if found is None:
            rules = edit([])
            data = fmt.encode_policy(rules, None)
            result[:] = [fmt.parse_policy(data, view.label)]
            root[:] = [Digest.of_bytes(data)]
            return {fmt.POLICY: data}
        if key is None:
            raise UsageError(f"{view.label}: changing the trust policy needs a key it trusts: give --key FILE (or LFSREG_SIGNING_KEY)")
        if key.public.key_id not in {k.key_id for k in found.policy.all_keys()}:
            raise UsageError(f"{view.label}: key {key.public.key_id} is not one the trust policy trusts; it cannot change it")
        old = view.snapshot.read(fmt.POLICY) or b""
        rules = edit(list(found.policy.rules))
        if _shape(rules) == _shape(found.policy.rules):
            result[:] = [found.policy]
            root.clear()
            return {}  # nothing changes: no new version
        data = fmt.encode_policy(rules, found.digest)
        result[:] = [fmt.parse_policy(data, view.label)]
        root.clear()
        changes: dict[str, bytes | None] = {
            fmt.POLICY: data,
            fmt.POLICY_SIG: fmt.sign_policy(key, data),
            fmt.history_path(found.digest): old,
        }
        old_sig = view.snapshot.read(fmt.POLICY_SIG)
        if old_sig is not None:
            changes[fmt.history_path(found.digest) + ".sig"] = old_sig
        return changes

    commit = publisher.publish(build, message)
    if commit is not None and cache_dir is not None and root:
        pin(cache_dir, publisher.label, root[0])  # the root this machine made
    return commit, result[0]


def _shape(rules: Sequence[fmt.Rule]) -> list[tuple[str, list[str]]]:
    return [(r.images, [k.key_id for k in r.keys]) for r in rules]
