"""The registry format on top of a git tree and an LFS store (see docs/format.md)."""
