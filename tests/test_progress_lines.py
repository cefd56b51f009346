"""Terminal progress: one line per layer (waiting, preparing/pushing/downloading with bytes and
rate, verifying, done or already present) plus a total line, as ``docker push``/``pull`` draw.

The board is fed events by hand (fake clock); the renderer draws on a fake terminal (a rich
``Console`` forced to be one); the CLI runs for real in a pseudo-terminal; the events the library
sends are recorded from real pushes and pulls, local and over HTTPS.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import termios
import time

import pytest
from clirun import check_no_crash_text
from conftest import CLI_TIMEOUT, assert_ok, fixture, run_cli
from rich.console import Console

import lfsreg
from lfsreg.cli.progress_lines import LayerBoard, LiveLines, Row, fit
from lfsreg.cli.render import ProgressBars
from lfsreg.progress import DONE, ESTIMATE, PRESENT, TRANSFERRING, VERIFYING, WAITING, ProgressEvent

A, B, C = ("sha256:" + c * 64 for c in "abc")
MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _statuses(board: LayerBoard) -> dict[str, str]:
    return {row.label: row.status for row in board.rows()}


def _app_layers() -> list[str]:
    """Short ids of the layers of fixtures/app.docker.tar, as the source names them."""
    with tarfile.open(fixture("app.docker.tar")) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    return [name.removesuffix(".tar")[:12] for name in manifest[0]["Layers"]]


# -- the vocabulary ---------------------------------------------------------------------------------
def test_event_phase_defaults_follow_done_and_done_follows_phase():
    assert ProgressEvent(A, "push", 10).phase == TRANSFERRING
    assert ProgressEvent(A, "push", 10, 0, True).phase == DONE
    assert ProgressEvent(A, "push", 10, phase=PRESENT).done
    assert not ProgressEvent(A, "push", 10, phase=WAITING).done
    with pytest.raises(ValueError, match="phase"):
        ProgressEvent(A, "push", 10, phase="sleeping")


# -- the board ----------------------------------------------------------------------------------------
def test_push_board_walks_each_layer_through_docker_like_states():
    clock = Clock()
    board = LayerBoard("push", clock)
    board.update(ProgressEvent(A, "push", 50 * MB, phase=WAITING))
    board.update(ProgressEvent(B, "push", 20 * MB, phase=WAITING))
    board.update(ProgressEvent(C, "push", 1 * MB, phase=PRESENT))
    assert _statuses(board) == {"a" * 12: "Waiting", "b" * 12: "Waiting", "c" * 12: "Already exists", "Total": "1/3 layers"}

    board.update(ProgressEvent(A, "push", 50 * MB))
    clock.now += 2
    board.update(ProgressEvent(A, "push", 50 * MB, 10 * MB))
    row = board.rows()[0]
    assert (row.status, row.amount, row.rate, row.fraction) == ("Preparing", "10MB/50MB", "5MB/s", 0.2)
    total = board.rows()[-1]
    assert total.status == "1/3 layers, preparing"
    assert total.amount == "10MB/70MB"  # the present layer costs nothing
    assert total.rate.startswith("5MB/s")

    board.update(ProgressEvent(A, "push", 50 * MB, 40 * MB))
    board.update(ProgressEvent(A, "push", 50 * MB, 0, True))
    board.update(ProgressEvent(B, "push", 20 * MB))
    board.update(ProgressEvent(B, "push", 20 * MB, 20 * MB))
    board.update(ProgressEvent(B, "push", 20 * MB, 0, True))
    assert _statuses(board)["a" * 12] == "Staged"
    # the upload moves fewer bytes (compressed): a line follows its current action's size
    board.update(ProgressEvent(A, "upload", 10 * MB))
    board.update(ProgressEvent(A, "upload", 10 * MB, 4 * MB))
    board.update(ProgressEvent(A, "upload", 10 * MB, -4 * MB))  # a retry rolls back
    board.update(ProgressEvent(A, "upload", 10 * MB, 6 * MB))
    board.update(ProgressEvent(B, "upload", 5 * MB, phase=PRESENT))  # the LFS server had it
    rows = {row.label: row for row in board.rows()}
    assert (rows["a" * 12].status, rows["a" * 12].amount) == ("Pushing", "6MB/10MB")
    assert rows["b" * 12].status == "Already exists"
    assert rows["Total"].status == "2/3 layers, pushing"
    assert rows["Total"].amount == "11MB/15MB"

    board.update(ProgressEvent(A, "upload", 10 * MB, 4 * MB))
    board.update(ProgressEvent(A, "upload", 10 * MB, phase=VERIFYING))
    assert _statuses(board)["a" * 12] == "Verifying"
    board.update(ProgressEvent(A, "upload", 10 * MB, 0, True))
    rows = {row.label: row for row in board.rows()}
    assert rows["a" * 12].status == "Pushed"
    assert rows["a" * 12].fraction is None  # no bar once done
    assert (rows["Total"].status, rows["Total"].fraction) == ("3/3 layers", 1.0)


def test_pull_board_downloads_then_writes_and_announcements_never_undo_progress():
    board = LayerBoard("pull", Clock())
    board.update(ProgressEvent(A, "pull", 10 * MB, phase=WAITING))
    board.update(ProgressEvent(A, "download", 10 * MB))
    board.update(ProgressEvent(A, "download", 10 * MB, 10 * MB))
    board.update(ProgressEvent(A, "download", 10 * MB, 0, True))
    board.update(ProgressEvent(A, "pull", 10 * MB, phase=WAITING))  # a late announcement
    assert _statuses(board)["a" * 12] == "Download complete"
    assert board.rows()[-1].status == "0/1 layers, downloading"
    board.update(ProgressEvent(A, "pull", 10 * MB))
    board.update(ProgressEvent(A, "pull", 10 * MB, 3 * MB))
    assert board.rows()[0].status == "Writing"
    assert board.rows()[-1].amount == "3MB/10MB"
    board.update(ProgressEvent(A, "pull", 10 * MB, 7 * MB))
    board.update(ProgressEvent(A, "pull", 10 * MB, 0, True))
    # a layer read again (a docker-archive measures a layer before writing it) starts over
    board.update(ProgressEvent(A, "pull", 10 * MB))
    board.update(ProgressEvent(A, "pull", 10 * MB, 1 * MB))
    assert board.rows()[0].amount == "1MB/10MB"
    board.update(ProgressEvent(A, "pull", 10 * MB, 9 * MB))
    board.update(ProgressEvent(A, "pull", 10 * MB, 0, True))
    assert _statuses(board) == {"a" * 12: "Pull complete", "Total": "1/1 layers"}


def test_a_docker_save_member_and_its_digest_share_one_line():
    board = LayerBoard("push", Clock())
    board.update(ProgressEvent("blobs/sha256/" + "a" * 64, "push", 5 * MB))  # staged while the engine streams
    board.update(ProgressEvent("blobs/sha256/" + "a" * 64, "push", 5 * MB, 5 * MB))
    board.update(ProgressEvent("blobs/sha256/" + "a" * 64, "push", 5 * MB, 0, True))
    board.update(ProgressEvent(A, "push", 5 * MB, phase=WAITING))
    board.update(ProgressEvent(A, "stored", 1 * MB, 0, True))
    board.update(ProgressEvent("odd-name.tar", "push", 1 * MB, phase=WAITING))
    assert _statuses(board) == {"a" * 12: "Pushed", "odd-name.tar": "Waiting", "Total": "1/2 layers, preparing"}


def test_more_layers_than_terminal_lines_drop_finished_layers_first_and_keep_the_total():
    rows = [Row(f"l{i}", "Pushed" if i in (1, 3) else "Pushing", None, "", "", i in (1, 3)) for i in range(6)]
    rows.append(Row("Total", "2/6 layers", 0.5, "", ""))
    assert [r.label for r in fit(rows, 5)] == ["l0", "l2", "l4", "l5", "Total"]
    assert [r.label for r in fit(rows, 3)] == ["l0", "l2", "Total"]
    assert [r.label for r in fit(rows, 50)] == [r.label for r in rows]


# -- the renderer on a fake terminal ------------------------------------------------------------------
def test_live_lines_draw_one_line_per_layer_and_keep_log_lines_whole():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        lines = LiveLines("push", console=console)
        lines(ProgressEvent(A, "push", 3 * MB, phase=WAITING))
        lines(ProgressEvent(B, "push", 2 * MB, phase=PRESENT))
        lines(ProgressEvent(A, "push", 3 * MB))
        lines(ProgressEvent(A, "push", 3 * MB, 1 * MB))
        logging.getLogger("lfsreg.test").warning("a warning while drawing")
        time.sleep(0.3)  # the refresh thread draws the middle state
        lines(ProgressEvent(A, "push", 3 * MB, 2 * MB))
        lines(ProgressEvent(A, "push", 3 * MB, 0, True))
        lines(ProgressEvent(A, "stored", 1 * MB, 0, True))
        lines.close()
    finally:
        logging.getLogger().removeHandler(handler)
    assert handler.stream is sys.stderr  # put back
    text = out.getvalue()
    assert "\x1b[1A" in text or "\x1b[2K" in text  # redrawn in place, not scrolled
    assert re.search(r"a{12}: Preparing +━+.* 1MB/3MB", text)
    screen = _last_frame(text)
    assert re.search(r"^a{12}: Pushed\b", screen, re.M), screen
    assert re.search(r"^b{12}: Already exists\b", screen, re.M), screen
    assert re.search(r"^Total: +2/2 layers +━+ 1MB/1MB", screen, re.M), screen  # sizes as stored
    assert re.search(r"^a warning while drawing$", _plain(text), re.M), text


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def _last_frame(text: str) -> str:
    """The lines drawn after the last cursor-up sequence: what the terminal shows at the end."""
    return _plain(re.split(r"\x1b\[1A\x1b\[2K(?!\x1b\[1A)", text)[-1])


def test_progress_bars_stay_quiet_and_import_no_rich_off_a_terminal(tmp_path):
    bars = ProgressBars("push", enabled=False)
    bars(ProgressEvent(A, "push", 1))
    bars.close()
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("init", repo))
    proc = run_cli("push", repo, "docker-archive:" + str(fixture("app.docker.tar")))
    assert_ok(proc)
    assert proc.stderr == ""  # stderr is a pipe here: no progress
    # the CLI imports rich only when it draws
    code = "import sys, lfsreg.cli; assert not [m for m in sys.modules if m.split('.')[0] == 'rich'], 'rich imported'"
    assert_ok(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CLI_TIMEOUT))
    argv = [sys.executable, "-X", "importtime", "-m", "lfsreg", "--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert_ok(proc)
    assert not re.search(r"\|\s+rich\b", proc.stderr)


# -- the real CLI in a pseudo-terminal ----------------------------------------------------------------
def run_in_pty(*args: object, columns: int = 120) -> tuple[int, str, str]:
    """Run ``python -m lfsreg ARGS`` with stderr on a pseudo-terminal; (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lfsreg", *(str(a) for a in args)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + CLI_TIMEOUT
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.communicate(timeout=CLI_TIMEOUT)[0].decode()
    terminal = b"".join(chunks).decode(errors="replace")
    check_no_crash_text(terminal, stdout)
    return proc.returncode, stdout, terminal


def test_cli_in_a_terminal_shows_per_layer_lines_and_a_total(tmp_path):
    repo = tmp_path / "reg.git"
    assert_ok(run_cli("init", repo))
    layers = _app_layers()
    source = "docker-archive:" + str(fixture("app.docker.tar"))

    code, stdout, terminal = run_in_pty("push", repo, source)
    assert code == 0, terminal
    screen = _last_frame(terminal)
    for layer in layers:
        assert re.search(rf"^{layer}: Pushed\b", screen, re.M), screen
    assert re.search(r"^Total: +3/3 layers\b", screen, re.M), screen
    assert "3 layer(s) stored" in stdout  # the result still goes to stdout, plainly

    code, stdout, terminal = run_in_pty("push", repo, source, "--format", "json")
    assert code == 0, terminal
    assert json.loads(stdout)["layers_reused"] == 3  # JSON on stdout as before
    screen = _last_frame(terminal)
    for layer in layers:
        assert re.search(rf"^{layer}: Already exists\b", screen, re.M), screen

    code, stdout, terminal = run_in_pty("pull", repo, "acme/app:1.0", "-o", f"oci:{tmp_path / 'out'}")
    assert code == 0, terminal
    screen = _last_frame(terminal)
    assert len(re.findall(r"^[0-9a-f]{12}: Pull complete\b", screen, re.M)) == 3, screen
    assert re.search(r"^Total: +3/3 layers\b", screen, re.M), screen


# -- what the library sends -----------------------------------------------------------------------
def _phases(events: list[ProgressEvent]) -> dict[str, list[tuple[str, str]]]:
    """Per key, the (action, phase) steps with consecutive repeats folded (a push's one estimate left out)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for e in events:
        if e.action == ESTIMATE:
            continue
        steps = out.setdefault(e.key, [])
        if not steps or steps[-1] != (e.action, e.phase):
            steps.append((e.action, e.phase))
    return out


def test_local_push_and_pull_send_waiting_transferring_done_and_present(registry, tmp_path):
    reg = lfsreg.Registry(str(registry))
    source = "docker-archive:" + str(fixture("app.docker.tar"))
    events: list[ProgressEvent] = []
    reg.push([source], progress=events.append)
    steps = _phases(events)
    assert sorted(k[7:19] for k in steps) == sorted(_app_layers())
    for key, seen in steps.items():
        assert seen == [("push", WAITING), ("push", TRANSFERRING), ("push", DONE), ("stored", DONE)], key

    events.clear()
    reg.push([source], progress=events.append)
    assert {tuple(s) for s in _phases(events).values()} == {(("push", PRESENT),)}

    events.clear()
    reg.pull(["acme/app:1.0"], f"oci:{tmp_path / 'out'}", progress=events.append)
    for key, seen in _phases(events).items():
        assert seen == [("pull", WAITING), ("pull", TRANSFERRING), ("pull", DONE)], key


@pytest.mark.interop
def test_https_push_keys_uploads_by_source_layer_and_reports_verify_and_present(git_http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    first = git_http_server.create_repo("progress/first")
    source = "docker-archive:" + str(fixture("app.docker.tar"))  # plain layers: stored compressed, under other digests
    events: list[ProgressEvent] = []
    with lfsreg.Registry(first.auth_url) as reg:
        reg.push([source], progress=events.append)
    steps = _phases(events)
    assert sorted(k[7:19] for k in steps) == sorted(_app_layers())  # one line per source layer, uploads included
    for key, seen in steps.items():
        assert seen[:3] == [("push", WAITING), ("push", TRANSFERRING), ("push", DONE)], key
        assert seen[3:] in (
            [("upload", TRANSFERRING), ("upload", VERIFYING), ("upload", DONE)],  # giftless hands out verify actions
            [("upload", TRANSFERRING), ("upload", DONE)],
        ), key
    assert any(s == ("upload", VERIFYING) for seen in steps.values() for s in seen)

    # A second repository whose LFS store already holds the objects: the batch API says so.
    second = git_http_server.create_repo("progress/second")
    assert second.lfs_storage is not None and first.lfs_storage is not None
    second.lfs_storage.mkdir(parents=True, exist_ok=True)
    for obj in first.lfs_storage.iterdir():
        shutil.copy(obj, second.lfs_storage / obj.name)
    events.clear()
    with lfsreg.Registry(second.auth_url) as reg:
        reg.push([source], progress=events.append)
    for key, seen in _phases(events).items():
        assert seen[-1] == ("upload", PRESENT), (key, seen)

    events.clear()
    shutil.rmtree(tmp_path / "cache")
    with lfsreg.Registry(second.auth_url) as reg:
        reg.pull(["acme/app:1.0"], f"oci:{tmp_path / 'out'}", progress=events.append)
    for key, seen in _phases(events).items():
        assert seen == [("pull", WAITING), ("download", TRANSFERRING), ("download", DONE), ("pull", TRANSFERRING), ("pull", DONE)], key


@pytest.mark.interop
def test_engine_push_shows_one_line_per_layer(tmp_path, monkeypatch):
    from engine_peer import start_engine

    with start_engine(tmp_path / "engine") as engine:
        engine.podman("load", "-q", "-i", str(fixture("app.docker.tar")))
        monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
        reg = lfsreg.Registry(str(tmp_path / "reg.git"))
        reg.init()
        events: list[ProgressEvent] = []
        reg.push(["docker-daemon:acme/app:1.0"], progress=events.append)
    board = LayerBoard("push", Clock())
    for event in events:
        board.update(event)
    statuses = _statuses(board)
    assert statuses.pop("Total") == "3/3 layers", statuses
    assert sorted(statuses) == sorted(_app_layers()), statuses  # the stream's member names fold into the digests
    assert set(statuses.values()) == {"Pushed"}, statuses
