"""Pure codecs for image formats on disk: docker-save tarballs, OCI layouts, LFS pointers."""
