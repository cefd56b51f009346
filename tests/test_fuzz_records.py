"""Fuzzing the registry's own small records: tag files and ``diffids/`` records (registry/layout.py).

The registry is a git repository anyone with push access can edit, so its records are input
too: a damaged tag file reads as no digest, a damaged record raises only lfsreg's own errors
(the view then logs it and treats it as absent).
"""

from __future__ import annotations

import json

from fuzzing import FUZZ, encode, json_values, mutated, only_lfsreg_errors
from hypothesis import given
from hypothesis import strategies as st

from lfsreg import mediatypes as mt
from lfsreg.digest import Digest
from lfsreg.manifest import Descriptor
from lfsreg.registry import layout

DIFF_ID = Digest.parse("sha256:" + "1" * 64)
RECORD = {"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 352, "uncompressedSize": 6144}
HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@FUZZ
@given(st.binary(max_size=200) | HEX.map(lambda h: f"sha256:{h}\n".encode()) | st.text(max_size=80).map(str.encode))
def test_tag_file(data):
    digest = layout.parse_tag(data)
    assert digest is None or str(digest) in data.decode()


@FUZZ
@given(HEX)
def test_tag_file_round_trip(hexpart):
    digest = Digest.sha256(hexpart)
    assert layout.parse_tag(layout.tag_content(digest)) == digest


def _check(data: bytes) -> None:
    record = only_lfsreg_errors(layout.parse_diffid, data, DIFF_ID, "fuzz")
    if record is None:
        return
    assert isinstance(record.desc.size, int) and not isinstance(record.desc.size, bool) and record.desc.size >= 0
    assert mt.layer_compression(record.desc.media_type) is not None
    usize = record.uncompressed_size
    assert usize is None or (isinstance(usize, int) and not isinstance(usize, bool) and usize >= 0)


@FUZZ
@given(st.binary(max_size=300))
def test_diffid_record_arbitrary_bytes(data):
    _check(data)


@FUZZ
@given(json_values)
def test_diffid_record_arbitrary_json(doc):
    _check(encode(doc))


@FUZZ
@given(mutated([RECORD, {**RECORD, "mediaType": mt.OCI_LAYER, "digest": str(DIFF_ID)}]))
def test_diffid_record_mutated(doc):
    _check(json.dumps(doc, indent=1).encode())


@FUZZ
@given(
    st.sampled_from(sorted(mt.OCI_LAYER_FOR.values())), HEX, st.integers(min_value=0, max_value=2**40), st.none() | st.integers(0, 2**40)
)
def test_diffid_record_round_trip(media_type, hexpart, size, usize):
    digest = Digest.sha256(hexpart)
    if media_type == mt.OCI_LAYER:
        digest, usize = DIFF_ID, size if usize is not None else None
    record = layout.DiffIdRecord(Descriptor(media_type, digest, size), usize)
    assert layout.parse_diffid(layout.diffid_content(record), DIFF_ID, "fuzz") == record
