"""Edges of the terminal progress renderer (lfsreg/cli/progress_lines.py) that whole pushes do not reach.

Fed by hand with a fake clock (as tests/test_progress_lines.py does): events that carry no
size, a layer finished without moving a byte, bytes of an earlier stage arriving while a later
one is measured, a verb with no final action, and a display closed before anything was drawn.
"""

from __future__ import annotations

import io

from rich.console import Console
from test_progress_lines import Clock

from lfsreg.cli.progress_lines import LayerBoard, LiveLines
from lfsreg.progress import PRESENT, ProgressEvent

A, B = ("sha256:" + c * 64 for c in "ab")
MB = 1_000_000


def _rows(board: LayerBoard) -> dict:
    return {row.label: row for row in board.rows()}


def test_an_event_without_a_size_keeps_the_size_known_so_far():
    board = LayerBoard("push", Clock())
    board.update(ProgressEvent(A, "push", 8 * MB))
    board.update(ProgressEvent(A, "push", None, 2 * MB))
    board.update(ProgressEvent(A, "push", 0, 2 * MB))
    assert _rows(board)["a" * 12].amount == "4MB/8MB"


def test_a_layer_done_without_moving_bytes_adds_nothing_to_the_total():
    board = LayerBoard("pull", Clock())
    board.update(ProgressEvent(A, "pull", 4 * MB))
    board.update(ProgressEvent(A, "pull", 4 * MB, 4 * MB))
    board.update(ProgressEvent(A, "pull", 4 * MB, 0, True))
    board.update(ProgressEvent(B, "pull", 6 * MB, 0, True))  # written without a byte reported
    rows = _rows(board)
    assert rows["b" * 12].status == "Pull complete"
    assert rows["b" * 12].amount == ""  # no bar, no bytes for a layer that moved none
    assert rows["Total"].status == "2/2 layers"


def test_the_total_measures_the_action_that_last_started_and_only_its_bytes():
    clock = Clock()
    board = LayerBoard("push", clock)
    board.update(ProgressEvent(A, "push", 10 * MB))
    board.update(ProgressEvent(A, "push", 10 * MB, 10 * MB))
    board.update(ProgressEvent(A, "push", 10 * MB, 0, True))
    board.update(ProgressEvent(A, "upload", 10 * MB))  # the upload stage starts
    board.update(ProgressEvent(A, "upload", 10 * MB, 3 * MB))
    assert _rows(board)["Total"].status == "0/1 layers, pushing"
    board.update(ProgressEvent(B, "push", 20 * MB))  # then another layer starts being prepared
    board.update(ProgressEvent(B, "push", 20 * MB, 5 * MB))
    board.update(ProgressEvent(A, "upload", 10 * MB, 2 * MB))  # bytes of the other stage meanwhile
    clock.now += 1
    rows = _rows(board)
    assert rows["b" * 12].status == "Preparing" and rows["b" * 12].amount == "5MB/20MB"
    assert rows["a" * 12].status == "Pushing" and rows["a" * 12].amount == "5MB/10MB"
    assert rows["Total"].status == "0/2 layers, preparing"
    assert rows["Total"].rate.startswith("5MB/s")  # B's preparing only, not A's upload bytes
    assert rows["Total"].amount == "15MB/30MB"  # A counts as prepared, B as far as it got


def test_a_verb_without_a_final_action_finishes_a_layer_at_any_done():
    board = LayerBoard("copy", Clock())
    board.update(ProgressEvent(A, "download", 2 * MB))
    board.update(ProgressEvent(A, "download", 2 * MB, 2 * MB))
    board.update(ProgressEvent(A, "download", 2 * MB, 0, True))
    board.update(ProgressEvent(B, "copy", 1 * MB, phase=PRESENT))
    rows = _rows(board)
    assert rows["a" * 12].status == "Download complete"
    assert rows["Total"].status == "2/2 layers"
    assert rows["Total"].fraction == 1.0


def test_closing_a_display_that_never_started_draws_nothing():
    out = io.StringIO()
    lines = LiveLines("push", console=Console(file=out, force_terminal=True, width=80, color_system=None))
    lines.close()
    lines.close()  # twice is harmless
    assert out.getvalue() == ""
