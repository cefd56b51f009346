"""The Docker Engine API (Docker, or Podman's compatible service) as an image source and sink."""
