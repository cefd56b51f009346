"""Image signatures in cosign's format: signing keys, the simple-signing payload, the ``.sig`` manifest, the trust policy.

Pure formats and cryptography, no I/O beyond key files: :mod:`.keys` (key pairs, sign, verify),
:mod:`.cosign` (payload and signature manifest, cosign's ``specs/SIGNATURE_SPEC.md``),
:mod:`.cosign_key` (cosign's own encrypted private keys), :mod:`.policy` (the registry's trust policy).
"""
