"""``prune`` and ``copy`` with signature tags: a ``NAME:sha256-<hex>.sig`` tag is no image of its own; it goes with its image.

Before signatures were known to them, ``prune --keep-last 1`` counted a signature tag (set by
the latest ``lfsreg sign``) as the newest tag of its image and untagged the image itself, and
``copy SRC DST NAME:TAG`` left the image's signatures behind.
"""

from __future__ import annotations

import json

from conftest import FIXTURES, assert_ok, run_cli
from signing_help import digest_of

import lfsreg


def test_keep_last_keeps_the_newest_image_and_its_signature(tmp_path):
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.init()
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
        reg.push([f"oci:{FIXTURES / 'tool.oci'}"], tags=["acme/app:2.0"])
    assert_ok(run_cli("keygen", "--sign", "--out", tmp_path / "k"))
    assert_ok(run_cli("sign", repo, "acme/app:2.0", "--key", tmp_path / "k"))
    assert_ok(run_cli("sign", repo, "acme/app:1.0", "--key", tmp_path / "k"))  # the newest tag set: 1.0's signature
    old, new = digest_of(repo, "acme/app:1.0"), digest_of(repo, "acme/app:2.0")
    assert_ok(run_cli("prune", repo, "--keep-last", "1"))
    tags = {t["tag"] for t in json.loads(run_cli("tags", repo, "acme/app", "--format", "json").stdout)}
    assert tags == {"2.0", f"sha256-{new.hex}.sig"}, tags  # 1.0 and its signature went; 2.0 stays, still signed
    assert f"sha256-{old.hex}.sig" not in tags
    assert_ok(run_cli("pull", repo, "acme/app:2.0", "--verify-key", tmp_path / "k.pub", "-o", f"oci:{tmp_path / 'out'}"))


def test_copy_of_one_image_brings_its_signatures(tmp_path):
    src, dst = tmp_path / "src.git", tmp_path / "dst.git"
    with lfsreg.Registry(str(src)) as reg:
        reg.init()
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
        reg.push([f"oci:{FIXTURES / 'tool.oci'}"], tags=["acme/tool:2.0"])
    assert_ok(run_cli("keygen", "--sign", "--out", tmp_path / "k"))
    assert_ok(run_cli("sign", src, "acme/app:1.0", "acme/tool:2.0", "--key", tmp_path / "k"))
    assert_ok(run_cli("init", dst))
    assert_ok(run_cli("copy", src, dst, "acme/app:1.0"))
    app = digest_of(src, "acme/app:1.0")
    assert {t["tag"] for t in json.loads(run_cli("tags", dst, "--format", "json").stdout)} == {"1.0", f"sha256-{app.hex}.sig"}
    assert_ok(run_cli("pull", dst, "acme/app:1.0", "--verify-key", tmp_path / "k.pub", "-o", f"oci:{tmp_path / 'out'}"))
