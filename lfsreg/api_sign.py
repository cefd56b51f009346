"""The signing part of :class:`lfsreg.api.Registry`: ``sign``, signature checks for ``pull`` and ``inspect``.

A mix-in, kept apart so that api.py stays small; the work is in :mod:`lfsreg.ops.sign` and the
format in :mod:`lfsreg.signing`. Keys are given as PEM text or as a path to a PEM file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .reference import ImageRef
from .signing.keys import ALGORITHMS as SIGNING_ALGORITHMS
from .signing.keys import write_signing_keypair

__all__ = ["SIGNING_ALGORITHMS", "SignMethods", "load_public_keys", "load_signing_key", "write_signing_keypair"]

if TYPE_CHECKING:
    from .ops.sign import SignResult
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

    def _check_signatures(self, view: RegistryView, refs: Sequence[ImageRef], verify_keys: Sequence[str], skip: bool) -> None:
        """Before a pull writes anything: each image signed by one of ``verify_keys`` (:class:`SignatureError` if not)."""
        if skip and verify_keys:
            raise UsageError("--verify-key and --insecure-skip-signatures contradict each other")
        keys = load_public_keys(verify_keys)
        if not keys:
            return
        from .ops.sign import require_signed

        for ref in refs:
            require_signed(view, ref.name, view.resolve(ref), keys, "a --verify-key key")
