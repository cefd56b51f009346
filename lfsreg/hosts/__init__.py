"""Clients of git hosts' own REST APIs (beyond git and LFS): their usage meters."""
