"""Byte counts for people, shared by the tables and the progress display."""

from __future__ import annotations


def human_size(n: int) -> str:
    """``docker images`` style sizes: 1.2kB, 3.4MB, 5.6GB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{n}B"
