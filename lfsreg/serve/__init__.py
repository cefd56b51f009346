"""``lfsreg serve``: the OCI distribution API over a registry."""
