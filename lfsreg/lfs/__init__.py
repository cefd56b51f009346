"""Git LFS object stores: where layer blobs live, addressed by sha256 oid."""
