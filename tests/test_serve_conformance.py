"""The OCI distribution-spec conformance suite against ``lfsreg serve``.

The suite (``conformance.test``, built by tools/install-test-deps.sh at the pinned commit) prints
a tree of results, one ``NAME: Pass|FAIL|Disabled|Unknown…`` line per test; the test fails on any
status but Pass, Disabled and Skip, and when the tree is missing or does not pass at its root.

Read-only run: a server without users, preloaded by ``lfsreg push`` with an image, an index and
their blobs, given to the suite as ``OCI_RO_DATA_*`` (pull, HEAD, tags list, referrers, missing
content, invalid digests). The suite at this pin crashes in its YAML report writer after printing
the results when push is off (a nil data entry, run.go ``ReportResultsYAML``): that crash, and only
it, is tolerated, the printed results are what is judged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import peers
import requests

import lfsreg
from tests.conftest import FIXTURES
from tests.servehelp import serving

RESULT = re.compile(r"^(\s*)(OCI Conformance Test[^:]*): (\w+)\s*$")
#: What a test may end as besides failing (the suite prints FAIL, and Unknown for what a failure cut short).
NOT_FAILED = {"pass", "disabled", "skip", "skipped"}
KNOWN_REPORT_CRASH = "conformance.(*runner).ReportResultsYAML"


def parse_results(output: str) -> dict[str, list[str]]:
    """``{status: [test names]}`` from the suite's printed result tree."""
    out: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = RESULT.match(line)
        if match:
            status = match.group(3).lower()
            out.setdefault(status if status in NOT_FAILED else "fail", []).append(match.group(2))
    return out


def run_suite(env: dict[str, str], tmp_path) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    suite = peers.conformance_suite()
    full = {**os.environ, "OCI_RESULTS_DIR": str(tmp_path / "results"), "OCI_LOG": "warn", **env}
    proc = subprocess.run([suite], env=full, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    return proc, parse_results(proc.stdout)


def test_conformance_read_only(tmp_path):
    path = tmp_path / "reg.git"
    with lfsreg.Registry(str(path)) as reg:
        reg.init()
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["conformance/repo1:1.0"])
        reg.push([f"oci:{FIXTURES / 'multi.oci'}:1.0"], tags=["conformance/repo1:multi"])
    with serving(path) as srv:
        base = srv.url
        manifests, blobs = [], []
        for tag in ("1.0", "multi"):
            resp = requests.get(f"{base}/v2/conformance/repo1/manifests/{tag}", timeout=30)
            manifests.append(resp.headers["Docker-Content-Digest"])
            doc = resp.json()
            for child in doc.get("manifests", []):
                manifests.append(child["digest"])
                sub = requests.get(f"{base}/v2/conformance/repo1/manifests/{child['digest']}", timeout=30).json()
                blobs += [sub["config"]["digest"], *(layer["digest"] for layer in sub["layers"])]
            if "config" in doc:
                blobs += [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
        env = {
            "OCI_REGISTRY": srv.url.removeprefix("http://"),
            "OCI_TLS": "disabled",
            "OCI_REPO1": "conformance/repo1",
            "OCI_REPO2": "conformance/repo2",
            "OCI_API_PUSH": "false",
            "OCI_API_BLOBS_DELETE": "false",
            "OCI_API_MANIFESTS_DELETE": "false",
            "OCI_API_TAGS_DELETE": "false",
            "OCI_RO_DATA_TAGS": "1.0 multi",
            "OCI_RO_DATA_MANIFESTS": " ".join(dict.fromkeys(manifests)),
            "OCI_RO_DATA_BLOBS": " ".join(dict.fromkeys(blobs)),
            "OCI_RO_DATA_REFERRERS": manifests[0],
        }
        proc, results = run_suite(env, tmp_path)
    summary = json.dumps({k: len(v) for k, v in results.items()})
    assert results, f"no results printed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not results.get("fail"), f"{summary}: failed {results.get('fail')}\n{proc.stdout[-4000:]}"
    assert "OCI Conformance Test" in results.get("pass", []), summary
    for needed in ("read-only/pull/manifest-by-tag", "read-only/head/blob-head", "read-only/referrers", "missing-manifest/by-tag"):
        assert any(name.endswith(needed) for name in results["pass"]), f"{needed} did not pass: {summary}"
    if proc.returncode != 0:
        assert KNOWN_REPORT_CRASH in proc.stderr + proc.stdout, f"the suite exited {proc.returncode}:\n{proc.stderr[-3000:]}"


def test_the_result_parser_sees_every_failure():
    printed = """Test results
OCI Conformance Test: FAIL
  OCI Conformance Test/ping: Pass
  OCI Conformance Test/read-only: FAIL
    OCI Conformance Test/read-only/tag-list: FAIL
     - missing tag "nope" from listing
    OCI Conformance Test/read-only/delete: Unknown
    OCI Conformance Test/read-only/push: Disabled
"""
    results = parse_results(printed)
    assert results["fail"] == [
        "OCI Conformance Test",
        "OCI Conformance Test/read-only",
        "OCI Conformance Test/read-only/tag-list",
        "OCI Conformance Test/read-only/delete",
    ]
    assert results["pass"] == ["OCI Conformance Test/ping"] and results["disabled"] == ["OCI Conformance Test/read-only/push"]
