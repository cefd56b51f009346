"""A client of the OCI distribution API (docker://, "registry v2"): auth, manifests, blobs, uploads.

:mod:`.auth` (credential sources, challenges, where secrets may go), :mod:`.session` (one
host: requests, auth handshake, retries), :mod:`.client` (the operations). Only the
``docker://`` transport (:mod:`lfsreg.transports.docker_registry`) uses it.
"""
