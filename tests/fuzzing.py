"""Shared pieces of the property-based fuzz tests (tests/test_fuzz_*.py).

The one property every parser must have: whatever the input, it returns or raises one of
lfsreg's own errors (:class:`lfsreg.errors.LfsregError`); anything else (``KeyError``,
``AttributeError``, ``RecursionError``, ``zlib.error``…) would reach the user as an internal
error. Inputs are drawn three ways: arbitrary bytes, arbitrary JSON, and real documents from
fixtures/ with one part replaced (which reaches far deeper into a parser than noise does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import FIXTURES
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lfsreg.errors import LfsregError

# Fast enough for every run of the suite (a few seconds per parser).
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = [
    "schemaVersion",
    "mediaType",
    "digest",
    "size",
    "manifests",
    "layers",
    "config",
    "annotations",
    "platform",
    "os",
    "architecture",
    "variant",
    "rootfs",
    "diff_ids",
    "created",
    "uncompressedSize",
    "Config",
    "Layers",
    "RepoTags",
    "imageLayoutVersion",
    "org.opencontainers.image.ref.name",
    "io.containerd.image.name",
]
DIGESTS = ["sha256:" + "a" * 64, "sha256:" + "0" * 64, "sha512:" + "b" * 128, "sha256:", "sha256:" + "A" * 64, "md5:abc", ""]
MEDIA_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.container.image.v1+json",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(DIGESTS + MEDIA_TYPES + ["../x", "/abs", "a/../../b", "sha256:" + "a" * 64 + ".tar", "x:y"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


def only_lfsreg_errors(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; an :class:`LfsregError` is a fine answer (returns ``None``), anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except LfsregError:
        return None


def fixture_json(pattern: str) -> list[Any]:
    """Every JSON document under fixtures/ matching ``pattern`` (a glob), parsed."""
    out = []
    for path in sorted(FIXTURES.glob(pattern)):
        try:
            out.append(json.loads(path.read_bytes()))
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(doc[head], rest, value, delete)
        return copy
    copy_list = list(doc)
    if delete and not rest:
        del copy_list[head]
    else:
        copy_list[head] = _replace(doc[head], rest, value, delete)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn, docs: list[Any]) -> Any:
    """One of ``docs`` with one to three parts replaced by arbitrary JSON, or deleted."""
    doc = draw(st.sampled_from(docs))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(doc)))
        doc = _replace(doc, path, draw(json_values), delete=bool(path) and draw(st.booleans()))
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()
