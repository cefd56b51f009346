"""Property-based fuzzing of the LFS client's parsers: whatever a peer sends, only lfsreg's own errors.

Covers the batch-response parser (raw bytes and structured JSON close to the real shape), the
``git-lfs-authenticate`` output parser, the pkt-line codec and the ``git-lfs-transfer``
batch lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import string
import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfsreg.errors import LfsregError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.batch import decode_batch, parse_batch
from lfsreg.lfs.ssh import parse_authenticate
from lfsreg.lfs.sshtransfer import parse_batch_lines
from lfsreg.ssh import pktline

OIDS = ["a" * 64, "0123456789abcdef" * 4, "f" * 64]
REQUESTED = [LfsObject(OIDS[0], 10), LfsObject(OIDS[1], 0), LfsObject(OIDS[2], 1 << 40)]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
hrefs = st.sampled_from(["http://h/x", "https://h:443/x?sig=1", "ftp://h/x", "http://[::1/x", "", "http://h/a b", "https://u:p@h/"])
headers = st.dictionaries(st.text(max_size=10), st.text(max_size=10) | json_scalars, max_size=3)
actions = st.fixed_dictionaries(
    {},
    optional={
        "href": hrefs | json_scalars,
        "header": headers | json_values,
        "expires_in": st.integers() | json_scalars,
        "expires_at": st.sampled_from(["2030-01-01T00:00:00Z", "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "yesterday", ""])
        | json_scalars,
    },
)
errors = st.fixed_dictionaries({}, optional={"code": st.integers() | json_values, "message": st.text(max_size=20) | json_values})
entries = st.fixed_dictionaries(
    {"oid": st.sampled_from(OIDS)},
    optional={
        "size": st.integers() | json_scalars,
        "actions": st.dictionaries(st.sampled_from(["download", "upload", "verify", "other"]), actions, max_size=3) | json_values,
        "error": errors | json_values,
        "authenticated": json_scalars,
    },
)
responses = st.fixed_dictionaries(
    {"objects": st.lists(entries, max_size=4)},
    optional={"transfer": st.sampled_from(["basic", "ssh"]), "hash_algo": st.sampled_from(["sha256", "sha1"])},
) | st.fixed_dictionaries(
    {},
    optional={
        "objects": st.lists(entries | json_values, max_size=5) | json_values,
        "transfer": json_values,
        "hash_algo": json_values,
    },
)


def _only_ours(call: Callable[[], object]) -> None:
    with contextlib.suppress(LfsregError):
        call()


@FUZZ
@given(st.binary(max_size=300))
def test_batch_response_bytes(raw):
    for operation in ("upload", "download"):
        _only_ours(lambda op=operation: decode_batch(raw, op, REQUESTED, time.time(), "fuzz"))


@FUZZ
@given(responses | json_values, st.sampled_from(["upload", "download"]))
def test_batch_response_structure(data, operation):
    _only_ours(lambda: parse_batch(data, operation, REQUESTED, time.time(), "fuzz"))
    raw = json.dumps(data, allow_nan=True).encode()
    _only_ours(lambda: decode_batch(raw, operation, REQUESTED, time.time(), "fuzz"))


def test_batch_response_deeply_nested():
    raw = b'{"objects": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _only_ours(lambda: decode_batch(raw, "download", REQUESTED, time.time(), "fuzz"))


@FUZZ
@given(actions | json_values | st.binary(max_size=100))
def test_authenticate_output(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    _only_ours(lambda: parse_authenticate(raw, "https://h/x.git/info/lfs", time.time(), "fuzz"))


def _read_all(data: bytes) -> list[pktline.Packet]:
    stream = io.BytesIO(data)
    reader = pktline.PacketReader(stream.read, "fuzz")
    out: list[pktline.Packet] = []
    while True:
        try:
            out.append(reader.packet())
        except LfsregError:
            return out


@FUZZ
@given(st.binary(max_size=200))
def test_pktline_reader_random_bytes(data):
    stream = io.BytesIO(data)
    reader = pktline.PacketReader(stream.read, "fuzz")
    for _ in range(50):
        try:
            pkt = reader.packet()
            reader.text(pkt)
        except LfsregError:
            return


@FUZZ
@given(st.lists(st.binary(max_size=300) | st.sampled_from([pktline.FLUSH, pktline.DELIM]), max_size=8))
def test_pktline_roundtrip(packets):
    wire = b"".join(
        pktline.FLUSH_PKT if p is pktline.FLUSH else pktline.DELIM_PKT if p is pktline.DELIM else pktline.encode(p) for p in packets
    )
    assert _read_all(wire) == packets
    # Cut anywhere: what was complete is read, then only our errors.
    for cut in range(0, len(wire), max(1, len(wire) // 7)):
        _read_all(wire[:cut])


@FUZZ
@given(st.lists(st.text(alphabet=string.printable + "é\x00", max_size=150), max_size=6))
def test_transfer_batch_lines(lines):
    _only_ours(lambda: parse_batch_lines(lines, set(OIDS), "fuzz"))
    _only_ours(lambda: parse_batch_lines([f"{OIDS[0]} 10 {line}" for line in lines], set(OIDS), "fuzz"))
