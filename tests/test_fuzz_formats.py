"""Fuzzing the document parsers: LFS pointers, manifests and indexes, image configs, descriptors, digests.

Each may raise only lfsreg's own errors, whatever the input (issue 8); what they accept is
well-formed (integer sizes that are not booleans, valid digests).
"""

from __future__ import annotations

from fuzzing import FUZZ, encode, fixture_json, json_values, mutated, only_lfsreg_errors
from hypothesis import example, given
from hypothesis import strategies as st

from lfsreg.digest import Digest
from lfsreg.formats import lfs_pointer
from lfsreg.manifest import Descriptor, ImageConfig, Index, Manifest, dump_json, parse_config, parse_json, parse_manifest

MANIFESTS = fixture_json("*.oci/blobs/sha256/*")
DOCUMENTS = [d for d in MANIFESTS if isinstance(d, dict) and ("layers" in d or "manifests" in d)]
CONFIGS = [d for d in MANIFESTS if isinstance(d, dict) and "rootfs" in d]
INDEX_JSONS = fixture_json("*.oci/index.json")
HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


# -- LFS pointers ----------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=1100))
@example(f"version {lfs_pointer.VERSION}\noid sha256:{'a' * 64}\nsize \u00b2\n".encode())  # str.isdigit("²") is true
@example(f"version {lfs_pointer.VERSION}\noid sha256:{'a' * 64}\nsize {2**64}\n".encode())
def test_pointer_decode_arbitrary_bytes(data):
    obj = lfs_pointer.decode(data)  # returns None for anything that is not a pointer; never raises
    assert obj is None or (len(obj.oid) == 64 and isinstance(obj.size, int) and obj.size >= 0)


_LINES = st.one_of(
    st.sampled_from(
        [
            "version https://git-lfs.github.com/spec/v1",
            "version https://hawser.github.com/spec/v1",
            "version http://x/y",
            "ext-0-foo sha256:" + "1" * 64,
        ]
    ),
    HEX.map(lambda h: f"oid sha256:{h}"),
    st.text(max_size=70).map(lambda t: f"oid {t}"),
    st.integers(min_value=-5, max_value=2**80).map(lambda n: f"size {n}"),
    st.text(max_size=30).map(lambda t: f"size {t}"),
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=4).map(lambda t: f"size {t}"),
    st.text(max_size=30),
)


@FUZZ
@given(st.lists(_LINES, max_size=6), st.sampled_from(["\n", "\r\n", ""]))
def test_pointer_decode_pointer_like_lines(lines, end):
    obj = lfs_pointer.decode("".join(line + end for line in lines).encode("utf-8", "surrogatepass"))
    assert obj is None or (obj.size >= 0 and obj.size < 2**63 and Digest.sha256(obj.oid))


@FUZZ
@given(HEX, st.integers(min_value=0, max_value=2**63 - 1))
def test_pointer_round_trip(oid, size):
    obj = lfs_pointer.LfsObject(oid, size)
    assert lfs_pointer.decode(lfs_pointer.encode(obj)) == obj


# -- manifests, indexes, descriptors -----------------------------------------------------------------
def _check_descriptor(desc: Descriptor) -> None:
    assert isinstance(desc.size, int) and not isinstance(desc.size, bool) and desc.size >= 0
    assert Digest.parse(str(desc.digest)) == desc.digest
    assert isinstance(desc.media_type, str)
    desc.platform()
    dump_json(desc.to_json())


def _use_manifest(data: bytes) -> None:
    """Parse, then do what push and pull do with the result."""
    parsed = only_lfsreg_errors(parse_manifest, data, "fuzz")
    if parsed is None:
        return
    assert isinstance(parsed, (Manifest, Index))
    assert parsed.digest == Digest.of_bytes(data)
    children = parsed.manifests if isinstance(parsed, Index) else (parsed.config, *parsed.layers)
    for desc in children:
        _check_descriptor(desc)
    dump_json(parsed.obj)  # push rewrites documents from ``obj``


@FUZZ
@given(st.binary(max_size=400))
def test_manifest_arbitrary_bytes(data):
    _use_manifest(data)


@FUZZ
@given(json_values)
def test_manifest_arbitrary_json(doc):
    _use_manifest(encode(doc))


@FUZZ
@given(mutated(DOCUMENTS))
def test_manifest_mutated_real_documents(doc):
    _use_manifest(encode(doc))


@FUZZ
@given(mutated(INDEX_JSONS))
def test_descriptor_in_mutated_index_json(doc):
    items = doc.get("manifests") if isinstance(doc, dict) else None
    for item in items if isinstance(items, list) else [doc]:
        desc = only_lfsreg_errors(Descriptor.from_json, item, "fuzz")
        if desc is not None:
            _check_descriptor(desc)


@FUZZ
@given(json_values)
def test_descriptor_arbitrary_json(obj):
    desc = only_lfsreg_errors(Descriptor.from_json, obj, "fuzz")
    if desc is not None:
        _check_descriptor(desc)


def test_real_documents_parse():
    """The mutation seeds themselves are accepted (so the fuzzing starts from valid input)."""
    assert DOCUMENTS and CONFIGS and INDEX_JSONS
    for doc in DOCUMENTS:
        assert parse_manifest(encode(doc), "seed") is not None
    for doc in CONFIGS:
        assert parse_config(encode(doc), "seed").diff_ids


# -- image configs -----------------------------------------------------------------------------------
def _use_config(data: bytes) -> None:
    config = only_lfsreg_errors(parse_config, data, "fuzz")
    if config is None:
        return
    assert isinstance(config, ImageConfig)
    assert all(isinstance(d, Digest) for d in config.diff_ids)
    assert isinstance(config.platform, str) and isinstance(config.os, str)
    assert config.created is None or isinstance(config.created, str)


@FUZZ
@given(st.binary(max_size=300))
def test_config_arbitrary_bytes(data):
    _use_config(data)


@FUZZ
@given(json_values)
def test_config_arbitrary_json(doc):
    _use_config(encode(doc))


@FUZZ
@given(mutated(CONFIGS))
def test_config_mutated_real_documents(doc):
    _use_config(encode(doc))


# -- JSON and digests ----------------------------------------------------------------------------------
@FUZZ
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[]", "{}"]))
def test_json_any_nesting(depth, brackets):
    data = b"[" * depth + b"]" * depth if brackets == "[]" else b'{"a":' * depth + b"0" + b"}" * depth
    only_lfsreg_errors(parse_json, data, "fuzz")


@FUZZ
@given(st.text(max_size=140) | st.tuples(st.sampled_from(["sha256:", "sha512:", "sha256", ":"]), st.text(max_size=130)).map("".join))
def test_digest_parse(text):
    digest = only_lfsreg_errors(Digest.parse, text)
    assert digest is None or str(digest) == text
