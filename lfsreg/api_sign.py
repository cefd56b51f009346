"""The signing part of :class:`lfsreg.api.Registry`: ``sign``, signature checks for ``pull`` and ``inspect``.

A mix-in, kept apart so that api.py stays small; the work is in :mod:`lfsreg.ops.sign` and the
format in :mod:`lfsreg.signing`. Keys are given as PEM text or as a path to a PEM file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .reference import ImageRef
from .signing.keys import ALGORITHMS as SIGNING_ALGORITHMS
from .signing.keys import write_signing_keypair

Changes = dict[str, bytes | None]

__all__ = ["SIGNING_ALGORITHMS", "SignMethods", "load_public_keys", "load_signing_key", "write_signing_keypair"]

if TYPE_CHECKING:
    from .digest import Digest
    from .ops.sign import SignResult
    from .registry.location import RemoteOptions
    from .registry.transaction import Publisher
    from .registry.view import RegistryView
    from .signing.keys import PrivateKey, PublicKey


def load_signing_key(path: str | None = None, text: str | None = None, password: str | None = None) -> PrivateKey:
    """The private key in file ``path``, else in ``text`` (e.g. ``LFSREG_SIGNING_KEY``); ``password`` for an encrypted one.

    Raises:
        UsageError: neither given, unreadable, not a key lfsreg signs with, a wrong password.
            The message names the file or ``LFSREG_SIGNING_KEY``, never the key.
    """
    from .signing.keys import load_private, read_key_file

    secret = password.encode() if password else None
    if path:
        return load_private(read_key_file(path), path, secret)
    if text:
        return load_private(text.encode(), "LFSREG_SIGNING_KEY", secret)
    raise UsageError("no signing key: give --key FILE or set LFSREG_SIGNING_KEY")


def load_public_keys(keys: Sequence[str]) -> list[PublicKey]:
    """Public keys from PEM text or PEM files (``PUBLIC KEY``); :class:`UsageError` naming the one that is not."""
    from .signing.keys import load_public, read_key_file

    out = []
    for key in keys:
        if "-----BEGIN" in key:
            out.append(load_public(key.encode(), "public key"))
        else:
            out.append(load_public(read_key_file(key), key))
    return out


class SignMethods:
    """Signing images and checking their signatures (cosign's format, docs/format.md "Signatures")."""

    label: str
    options: RemoteOptions

    if TYPE_CHECKING:

        def _publisher(self, *, create: bool = False) -> Publisher: ...
        def view(self) -> RegistryView: ...  # noqa: D102 -- Registry's

    def sign(
        self, images: Sequence[str], key: PrivateKey, *, annotations: dict[str, str] | None = None, recursive: bool = False
    ) -> SignResult:
        """Sign ``images`` (``NAME:TAG`` or ``NAME@sha256:…``) with ``key``, in one commit.

        Each image's manifest or index digest is signed; with ``recursive``, an index's platform
        manifests too. Signatures are added to the digest's ``.sig`` manifest.

        Raises:
            InvalidReference: a malformed reference; ImageNotFound: one the registry lacks (nothing written).
            ConcurrentUpdateError: the registry kept moving under the commit.
        """
        from .ops.sign import sign_images

        refs = [ImageRef.parse(i) for i in images]
        publisher = self._publisher()
        view = publisher.view()
        return sign_images(publisher, view, refs, key, dict(annotations or {}), recursive)

    def _push_signatures(self, key: PrivateKey | None) -> Callable[[RegistryView, Mapping[tuple[str, str], Digest]], Changes] | None:
        """``push --sign-key``: the signatures of the pushed digests, as changes for the push's own commit."""
        if key is None:
            return None

        def extra(view: RegistryView, tags: Mapping[tuple[str, str], Digest]) -> Changes:
            from .ops.sign import signature_changes

            wanted = list(dict.fromkeys((name, digest) for (name, _), digest in tags.items()))
            return signature_changes(view, wanted, key, {})[0]

        return extra

    def signatures(self, image: str, verify_keys: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The signatures of ``image``'s digest, each checked against ``verify_keys`` (PEM text or files), JSON-ready.

        Each row: ``payload`` (digest), ``signature`` (base64), ``valid``, ``keyId`` (the key
        that made it, if one of ``verify_keys``), ``problem`` (why not valid), ``annotations``.
        """
        from .ops.sign import signatures

        keys = load_public_keys(verify_keys)
        ref = ImageRef.parse(image)
        view = self.view()
        digest = view.resolve(ref)
        keys += self._policy_keys(view, ref.name)
        rows = []
        for checked in signatures(view, ref.name, digest, keys):
            rows.append(
                {
                    "payload": str(checked.entry.desc.digest),
                    "signature": checked.entry.encoded,
                    "valid": checked.key_id is not None,
                    "keyId": checked.key_id,
                    "problem": checked.problem if keys or checked.key_id else None,
                    "annotations": checked.optional,
                }
            )
        return rows

    def _policy_keys(self, view: RegistryView, name: str) -> list[PublicKey]:
        """The keys the trust policy names for ``name`` (none if it has no policy, or one that does not check out)."""
        from .errors import SignatureError
        from .ops.trust import current

        try:
            found = current(view, self.options.cache_dir)
        except SignatureError:
            return []  # inspect shows signatures; pull is what refuses
        return [k for rule in (found.policy.rules_for(name) if found else []) for k in rule.keys]

    def _check_signatures(self, view: RegistryView, refs: Sequence[ImageRef], verify_keys: Sequence[str], skip: bool) -> None:
        """Before a pull writes anything: each image signed by one of ``verify_keys``, and as the trust policy asks.

        Raises :class:`SignatureError` naming the image and what is missing; ``skip``
        (``--insecure-skip-signatures``) skips the policy.
        """
        if skip and verify_keys:
            raise UsageError("--verify-key and --insecure-skip-signatures contradict each other")
        keys = load_public_keys(verify_keys)
        from .ops.sign import require_signed
        from .ops.trust import enforce

        for ref in refs:
            if keys:
                require_signed(view, ref.name, view.resolve(ref), keys, "a --verify-key key")
        if not skip:
            enforce(view, refs, self.options.cache_dir)

    # -- the trust policy ---------------------------------------------------------------------
    def trust_list(self) -> dict[str, Any]:
        """The registry's trust policy, its chain checked, JSON-ready: ``{"rules": [{"images", "keys": [key ids]}], …}``.

        Raises:
            SignatureError: the policy does not check out (a broken chain, another root than this machine pinned).
        """
        from .ops.trust import current, pinned

        found = current(self.view(), self.options.cache_dir)
        known = pinned(self.options.cache_dir, self.label) if self.options.cache_dir else None
        if found is None:
            return {"policy": None, "root": None, "pinned": str(known) if known else None, "rules": []}
        rules = [{"images": r.images, "keys": [k.key_id for k in r.keys]} for r in found.policy.rules]
        return {"policy": str(found.digest), "root": str(found.root), "pinned": str(known) if known else None, "rules": rules}

    def trust_add(self, images: str, public_keys: Sequence[str], key: PrivateKey | None = None) -> str | None:
        """Trust ``public_keys`` (PEM text or files) for images matching glob ``images``; one commit (``None``: no change).

        Once a policy exists, ``key`` must be a private key it trusts (its signature links the new policy to the old).
        """
        from .ops.trust import change
        from .signing.policy import Rule

        new = load_public_keys(public_keys)
        if not images or not new:
            raise UsageError("trust add takes a NAME_GLOB and at least one public key")

        def edit(rules: list[Rule]) -> list[Rule]:
            for i, rule in enumerate(rules):
                if rule.images == images:
                    have = {k.key_id for k in rule.keys}
                    rules[i] = Rule(images, rule.keys + tuple(k for k in new if k.key_id not in have))
                    return rules
            return [*rules, Rule(images, tuple({k.key_id: k for k in new}.values()))]

        message = f"trust {images}: add {', '.join(k.key_id for k in new)}\n"
        commit, _ = change(self._publisher(), self.options.cache_dir, key, edit, message)
        return commit

    def trust_remove(self, images: str, public_keys: Sequence[str] = (), key: PrivateKey | None = None) -> str | None:
        """Stop trusting ``public_keys`` for glob ``images`` (none given: drop the rule); one commit, signed as for :meth:`trust_add`.

        Raises:
            UsageError: no such rule or key; see :meth:`trust_add`.
        """
        from .ops.trust import change
        from .signing.policy import Rule

        gone = {k.key_id for k in load_public_keys(public_keys)}

        def edit(rules: list[Rule]) -> list[Rule]:
            rule = next((r for r in rules if r.images == images), None)
            if rule is None:
                raise UsageError(f"{self.label}: the trust policy has no rule for {images!r}")
            if gone - {k.key_id for k in rule.keys}:
                raise UsageError(f"{self.label}: the rule for {images!r} does not trust {', '.join(sorted(gone))}")
            kept = tuple(k for k in rule.keys if k.key_id not in gone) if gone else ()
            return [r if r is not rule else Rule(images, kept) for r in rules if r is not rule or kept]

        message = f"trust {images}: remove {', '.join(sorted(gone)) or 'the rule'}\n"
        commit, _ = change(self._publisher(), self.options.cache_dir, key, edit, message)
        return commit

    def trust_pin(self) -> str | None:
        """Trust the registry's current policy chain on this machine (after it was replaced on purpose); its root, or ``None``."""
        from .ops.trust import pin
        from .signing.policy import check_chain

        view = self.view()
        found = check_chain(view.snapshot.read, view.label)
        if self.options.cache_dir:
            pin(self.options.cache_dir, self.label, found.root if found else None)
        return str(found.root) if found else None
