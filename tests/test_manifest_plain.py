"""``plain_manifest`` and ``plain_diff_ids`` (lfsreg/manifest.py), the cheap readers ``verify`` and ``du`` use
for the common case, never accept what ``parse_manifest`` / ``parse_config`` refuse, and agree with them.

Seeded random mutations of a manifest and a config (values swapped for other JSON types,
members dropped or added, digests and sizes bent, deep nesting): whenever the cheap reader
answers, the full parser accepts the same document and gives the same config and layers
(diff_ids); the cheap reader answers for the plain documents themselves.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from lfsreg.errors import LfsregError
from lfsreg.manifest import Index, parse_config, parse_manifest, plain_diff_ids, plain_manifest

HEX = "0123456789abcdef"
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "a" * 64, "size": 271},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "b" * 64, "size": 132},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": "sha256:" + "c" * 64, "size": 0},
    ],
}
CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}}
ODD_VALUES: list[Any] = [
    *(None, True, False, 0, -1, 2, 2.0, 1e400, "", "x", [], {}, [1], {"k": "v"}, {"k": 1}),
    *("sha256:" + "e" * 64, "sha512:" + "f" * 128, "SHA256:" + "a" * 64),
]
EXTRA = ["annotations", "platform", "extra", "mediaType", "schemaVersion", "urls"]


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path: list[Any] = []
        node = doc
        while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append(key)
            node = node[key]
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if not path:
            continue
        action = rng.random()
        if action < 0.5:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action < 0.65 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.8 and isinstance(parent, dict):
            parent[rng.choice(["annotations", "platform", "extra", "mediaType", "schemaVersion", "urls"])] = copy.deepcopy(
                rng.choice(ODD_VALUES)
            )
        elif isinstance(parent[path[-1]], str) and parent[path[-1]].startswith("sha256:"):
            text = parent[path[-1]]
            i = rng.randrange(7, len(text))
            parent[path[-1]] = text[:i] + rng.choice([*HEX, "A", "g", ""]) + text[i + 1 :]
        else:
            parent[path[-1]] = json.loads("[" * 70 + "]" * 70)
    return doc


def _with(**members: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MANIFEST), **members}


CHOSEN = [  # edges random mutation reaches rarely
    _with(annotations={"k": 1}),
    _with(annotations={"k": "v"}),
    _with(annotations="x"),
    _with(config={**MANIFEST["config"], "annotations": {"a": "b"}}),
    _with(layers=[{**MANIFEST["layers"][0], "platform": {"os": "linux"}}]),
    _with(layers=[]),
    _with(schemaVersion=1),
]


def test_plain_manifest_answers_only_what_parse_manifest_accepts_and_agrees():
    rng = random.Random(10)
    answered = refused = 0
    for i in range(3000):
        doc = MANIFEST if i == 0 else CHOSEN[i - 1] if i <= len(CHOSEN) else _mutate(MANIFEST, rng)
        data = json.dumps(doc).encode()
        plain = plain_manifest(data)
        try:
            parsed = parse_manifest(data, "m")
        except LfsregError:
            parsed = None
            refused += 1
        if plain is None:
            assert i != 0, "the plain manifest itself is answered"
            continue
        answered += 1
        assert parsed is not None and not isinstance(parsed, Index), data
        config, layers, objs = plain
        assert config == (parsed.config.media_type, parsed.config.digest.hex, parsed.config.size)
        assert layers == [(d.media_type, d.digest.hex, d.size) for d in parsed.layers]
        assert objs == [d.raw for d in parsed.layers]
    assert answered > 300 and refused > 300, (answered, refused)  # both sides were exercised


def test_plain_diff_ids_answers_only_what_parse_config_accepts_and_agrees():
    rng = random.Random(11)
    answered = refused = 0
    for i in range(3000):
        doc = CONFIG if i == 0 else _mutate(CONFIG, rng)
        data = json.dumps(doc).encode()
        plain = plain_diff_ids(data)
        try:
            parsed = parse_config(data, "c")
        except LfsregError:
            parsed = None
            refused += 1
        if plain is None:
            assert i != 0, "the plain config itself is answered"
            continue
        answered += 1
        assert parsed is not None, data
        assert plain == [d.hex for d in parsed.diff_ids]
    assert answered > 300 and refused > 300, (answered, refused)
