"""The registry's own settings: ``lfsreg-config.json`` beside the format marker (docs/format.md).

::

    {"limits": {"storage": 10737418240, "object": 2000000000, "transfer": 10737418240},
     "preset": "github-free"}

Limits are byte counts: ``storage``, the LFS bytes the registry's history may reference (what
a git host bills); ``object``, the largest LFS object the host takes; ``transfer``, the LFS
bytes the host lets clients download a month. Every key is optional; the file is optional (a
registry without it has no limits). Readers ignore keys they do not know, so later versions
can add settings without a format version bump. A damaged file is reported, never guessed at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import NotARegistryError, UsageError
from .view import RegistryView

CONFIG = "lfsreg-config.json"
LIMIT_KEYS = ("storage", "object", "transfer")
KEYS = (*(f"limits.{k}" for k in LIMIT_KEYS), "preset")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes of ``10GiB``, ``2GB``, ``500 MB``, ``1.5GiB`` or ``123`` (powers of 1000 for kB/MB/GB, 1024 for KiB/MiB/GiB).

    :class:`UsageError` naming ``what`` if it does not parse.
    """
    m = _SIZE.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise UsageError(f"{what}: {text!r} is not a size; write e.g. 10GiB, 2GB, 500MB or a number of bytes")
    return int(float(m.group(1)) * _UNITS[unit]) if "." in m.group(1) else int(m.group(1)) * _UNITS[unit]


def format_size(n: int) -> str:
    """``n`` bytes for people: exact when a unit divides it (``10GiB``, ``2GB``), else ``1.23GB`` (as ``lfsreg images``)."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= factor:
            return f"{n / factor:.3g}{unit}"
    return f"{n}B"


@dataclass(frozen=True, slots=True)
class Limits:
    """The registry's limits in bytes (``None``: none set)."""

    storage: int | None = None
    object: int | None = None
    transfer: int | None = None


def read_config(view: RegistryView) -> dict[str, Any]:
    """The registry's config file as a JSON object (``{}`` when it has none).

    :class:`NotARegistryError` if the file is not a JSON object or a limit is not a byte count.
    """
    data = view.snapshot.read(CONFIG)
    if data is None:
        return {}
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("limits", {}), dict):
        raise NotARegistryError(
            f"{view.label}: {CONFIG} is damaged (not a JSON object)", hint=f"fix or remove it: lfsreg config {view.label} --reset"
        )
    for key, value in obj.get("limits", {}).items():
        if key in LIMIT_KEYS and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise NotARegistryError(f"{view.label}: {CONFIG}: limits.{key} is not a positive number of bytes: {value!r}")
    return obj


def limits_of(config: dict[str, Any]) -> Limits:
    """The :class:`Limits` of a config object (as :func:`read_config` returns it)."""
    limits = config.get("limits", {})
    return Limits(*(limits.get(k) for k in LIMIT_KEYS))


def read_limits(view: RegistryView) -> Limits:
    """The registry's limits at ``view``."""
    return limits_of(read_config(view))


def object_limit(view: RegistryView) -> int | None:
    """``limits.object`` of the registry at ``view`` in bytes (``None``: none), for chunked layers."""
    return read_limits(view).object


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """``{"limits.storage": 10737418240, "preset": "github-free", ...}``: every set key, dotted."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def updated(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``config`` with dotted ``values`` set (``None``: removed); empty sections are dropped."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if name:
            target = out.setdefault(section, {})
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
            if not target:
                out.pop(section)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def encode(config: dict[str, Any]) -> bytes | None:
    """The file's bytes (``None``: the file should not exist, nothing is set)."""
    if not config:
        return None
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


__all__ = [
    "CONFIG",
    "KEYS",
    "LIMIT_KEYS",
    "Limits",
    "encode",
    "flatten",
    "format_size",
    "limits_of",
    "object_limit",
    "parse_size",
    "read_config",
    "read_limits",
    "updated",
]
