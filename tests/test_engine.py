"""Push from and pull into a real Docker Engine API (Podman's service, tests/engine_peer.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, lfs_objects, run_cli, snapshot
from engine_peer import start_engine

from lfsreg.errors import InvalidImageError
from lfsreg.transports.engine_client import Endpoint, EngineClient, find_engine

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def engine_a(tmp_path_factory):
    with start_engine(tmp_path_factory.mktemp("engine-a")) as engine:
        for name in ("app.docker.tar", "tool.docker.tar", "base.docker.tar"):
            engine.podman("load", "-q", "-i", str(fixture(name)))
        yield engine


@pytest.fixture
def engine_b(tmp_path):
    with start_engine(tmp_path / "engine-b") as engine:
        yield engine


def _env(engine, **extra):
    return {**os.environ, "DOCKER_HOST": engine.docker_host, **extra}


def _inspect(engine, name):
    return json.loads(engine.podman("image", "inspect", name).stdout)[0]


def test_push_from_engine_equals_push_from_archive(engine_a, tmp_path):
    reg_engine, reg_file = tmp_path / "a.git", tmp_path / "b.git"
    assert_ok(run_cli("push", reg_engine, "acme/app:1.0", "docker-daemon:acme/tool:2.0", env=_env(engine_a)))
    assert_ok(run_cli("push", reg_file, f"docker-archive:{fixture('app.docker.tar')}", f"docker-archive:{fixture('tool.docker.tar')}"))
    tags = json.loads(run_cli("tags", reg_engine, "--format", "json").stdout)
    assert {(t["name"], t["tag"]) for t in tags} == {("acme/app", "1.0"), ("acme/tool", "2.0")}  # the names the user wrote
    assert tags == json.loads(run_cli("tags", reg_file, "--format", "json").stdout)  # same manifests, same digests
    assert sorted(p.name for p in lfs_objects(reg_engine)) == sorted(p.name for p in lfs_objects(reg_file))


def test_repeat_push_reads_no_layer_and_changes_nothing(engine_a, tmp_path):
    reg = tmp_path / "r.git"
    assert_ok(run_cli("push", reg, "acme/app:1.0", env=_env(engine_a)))
    before = snapshot(reg)
    mark = engine_a.log.read_text().count("/images/get")
    proc = run_cli("push", reg, "acme/app:1.0", "--format", "json", env=_env(engine_a))
    assert_ok(proc)
    assert json.loads(proc.stdout)["layers_uploaded"] == 0
    assert snapshot(reg) == before
    assert engine_a.log.read_text().count("/images/get") == mark  # no docker save was asked for


def test_push_of_new_image_whose_layers_exist_streams_only_once(engine_a, tmp_path):
    reg = tmp_path / "r.git"
    assert_ok(run_cli("push", reg, f"docker-archive:{fixture('base.docker.tar')}"))  # tool's first layer
    proc = run_cli("push", reg, "acme/tool:2.0", "--format", "json", env=_env(engine_a))
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert result["layers_reused"] == 1 and result["layers_uploaded"] == 1  # the shared base layer is not stored again


def test_pull_load_into_an_empty_engine(engine_a, engine_b, tmp_path):
    reg = tmp_path / "r.git"
    assert_ok(run_cli("push", reg, "acme/app:1.0", "acme/tool:2.0", env=_env(engine_a)))
    assert_ok(run_cli("pull", reg, "acme/app:1.0", "acme/tool:2.0", "--load", env=_env(engine_b)))
    for name in ("acme/app:1.0", "acme/tool:2.0"):
        a, b = _inspect(engine_a, name), _inspect(engine_b, name)
        assert a["Id"] == b["Id"]
        assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert not list(tmp_path.glob("*.tar"))  # no temporary tarball next to us
    # -o docker-daemon: is the same load: the image must really be in the engine afterwards
    engine_b.podman("rmi", "-f", "acme/app:1.0")
    assert "acme/app" not in engine_b.podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert_ok(run_cli("pull", reg, "acme/app:1.0", "-o", "docker-daemon:", env=_env(engine_b)))
    a, b = _inspect(engine_a, "acme/app:1.0"), _inspect(engine_b, "acme/app:1.0")
    assert (a["Id"], a["RootFS"]["Layers"]) == (b["Id"], b["RootFS"]["Layers"])


def test_engine_not_running(tmp_path):
    reg = tmp_path / "r.git"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}"}
    assert_error(run_cli("push", reg, "acme/app:1.0", env=env), 1, "cannot connect to the Docker engine")
    assert not reg.exists() or snapshot(reg)[0] is None


def test_socket_without_permission(engine_a, tmp_path):
    """Root bypasses file permissions, so drop CAP_DAC_OVERRIDE to see what a normal user sees."""
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv):
        pytest.fail("setpriv (util-linux) is missing")
    sock = tmp_path / "locked.sock"
    os.symlink(engine_a.socket, sock)
    mode = os.stat(engine_a.socket).st_mode
    os.chmod(engine_a.socket, 0o000)
    try:
        proc = subprocess.run(
            [
                setpriv,
                "--inh-caps=-all",
                "--bounding-set=-dac_override,-dac_read_search",
                sys.executable,
                "-m",
                "lfsreg",
                "push",
                str(tmp_path / "r.git"),
                "acme/app:1.0",
            ],
            env=_env(engine_a, DOCKER_HOST=f"unix://{sock}"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.chmod(engine_a.socket, mode)
    assert_error(proc, 1, "permission denied")


def test_unknown_image(engine_a, tmp_path):
    proc = run_cli("push", tmp_path / "r.git", "nosuch/image:1", env=_env(engine_a))
    assert_error(proc, 1, "nosuch/image:1")


def test_engine_rejecting_a_load_is_a_failure(engine_b):
    client = EngineClient(Endpoint("unix", str(engine_b.socket)))
    with pytest.raises(InvalidImageError) as info:
        client.load(iter([b"this is not a tar archive" * 100]))
    assert "refused" in str(info.value)


def test_corrupt_layer_aborts_the_load(engine_a, engine_b, tmp_path):
    reg = tmp_path / "r.git"
    assert_ok(run_cli("push", reg, "acme/app:1.0", "--compression", "none", env=_env(engine_a)))
    victim = max(lfs_objects(reg), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    proc = run_cli("pull", reg, "acme/app:1.0", "--load", env=_env(engine_b))
    assert_error(proc, 1, victim.name)
    images = engine_b.podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert "acme/app" not in images


def test_find_engine_rules(tmp_path):
    assert find_engine({"DOCKER_HOST": "unix:///x/y.sock"}) == Endpoint("unix", "/x/y.sock")
    tls = find_engine({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/c"})
    assert tls == Endpoint("tcp", "https://h:2376", ("/c/ca.pem", "/c/cert.pem", "/c/key.pem"))
    assert find_engine({"DOCKER_HOST": "tcp://h:2375"}) == Endpoint("tcp", "http://h:2375")
    rootless = tmp_path / "docker.sock"
    rootless.touch()
    found = find_engine({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert found in (Endpoint("unix", "/var/run/docker.sock"), Endpoint("unix", str(rootless)))
    if not Path("/var/run/docker.sock").exists():
        assert found == Endpoint("unix", str(rootless))


def test_one_engine_image_under_two_names(engine_a, tmp_path):
    engine_a.podman("tag", "acme/app:1.0", "acme/app:second")
    reg = tmp_path / "r.git"
    assert_ok(run_cli("push", reg, "acme/app:1.0", "acme/app:second", env=_env(engine_a)))
    tags = json.loads(run_cli("tags", reg, "--format", "json").stdout)
    assert {(t["name"], t["tag"]) for t in tags} == {("acme/app", "1.0"), ("acme/app", "second")}
    assert len({t["digest"] for t in tags}) == 1
