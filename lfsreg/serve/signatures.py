"""``lfsreg serve --require-signatures``: the registry's trust policy applied to every manifest ``GET``.

A manifest or index of a name that a policy rule matches is served only when it is signed by
one of that rule's keys (what ``lfsreg pull`` checks, :func:`lfsreg.ops.trust.enforce`), or when
it is a platform manifest of an index so signed (clients fetch those by digest after the
index), or when it is a signature manifest itself (``NAME:sha256-<hex>.sig``: ``cosign verify``
reads them). Anything else is ``403 DENIED`` naming what is missing. A policy that does not
check out (a broken chain) denies every manifest of every name. Blobs are served as always:
they are found only through a manifest. Results are cached per commit.
"""

from __future__ import annotations

from functools import partial

from ..digest import Digest
from ..errors import SignatureError
from ..reference import ImageRef
from ..registry.view import RegistryView
from ..signing import cosign
from ..signing.policy import Rule, Verified
from .errors import ApiError
from .state import ServeContext


class SignatureGate:
    """Decides, per name and digest, whether a manifest may be served (see the module docstring)."""

    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx
        self.cache_dir = ctx.registry.options.cache_dir

    def check(self, view: RegistryView, ref: ImageRef, digest: Digest) -> None:
        """Raise ``403 DENIED`` unless ``digest`` of ``ref.name`` may be served (call while reading ``view``)."""
        policy = self.ctx.memo(view, "trust policy", lambda: self._policy(view))
        if isinstance(policy, str):
            raise ApiError("DENIED", policy, 403)
        if policy is None:
            return
        rules = policy.policy.rules_for(ref.name)
        if not rules or (ref.tag is not None and cosign.signed_digest(ref.tag) is not None):
            return
        if digest in self.ctx.memo(view, f"signature manifests {ref.name}", lambda: self._signature_manifests(view, ref.name)):
            return
        for rule in rules:
            ok = self.ctx.memo(view, f"signed {ref.name} {digest} {rule.images}", partial(self._signed, view, ref.name, digest, rule))
            if ok is not True:
                raise ApiError("DENIED", ok, 403)

    def _policy(self, view: RegistryView) -> Verified | str | None:
        from ..ops.trust import current

        try:
            return current(view, self.cache_dir)
        except SignatureError as exc:
            return f"no manifest is served: {exc}"

    def _signature_manifests(self, view: RegistryView, name: str) -> set[Digest]:
        return {d for tag, d in view.tags(name) if cosign.signed_digest(tag) is not None}

    def _signed(self, view: RegistryView, name: str, digest: Digest, rule: Rule) -> bool | str:
        """True if ``digest`` (or an index holding it) carries a signature by ``rule``'s keys; else why not."""
        from ..ops.sign import require_signed_image

        try:
            require_signed_image(view, name, digest, rule.keys, f"a key the trust policy names for {rule.images!r}")
        except SignatureError as exc:
            return str(exc)
        return True


__all__ = ["SignatureGate"]
