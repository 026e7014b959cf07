"""The runner and the world outside a run: stop signals end it through its cleanup, its record
is written whole or not at all, and its progress lines say where each slot stands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dualbench.measure.progress import progress_text
from dualbench.measure.runner import write_atomically

# A stand-in for run_to_file under exit_on_signals: "body" once the handlers are in place, and
# a cleanup that takes a while, as killing and reaping workers does.
ENTRY_POINT = """
import sys, time
from dualbench.measure.lifetime import exit_on_signals
with exit_on_signals():
    try:
        print("body", flush=True)
        time.sleep(60)
    finally:
        print("cleanup started", flush=True)
        time.sleep(float(sys.argv[1]))
        print("cleanup done", flush=True)
print("after the run", flush=True)
"""


def default_stop_signals() -> None:
    """In the child before exec: the stop signals at their defaults. A shell without job
    control starts background commands with SIGINT ignored, and exit_on_signals rightly leaves
    an ignored signal ignored, so a suite started that way would otherwise test nothing."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def start_entry_point(cleanup_s: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY_POINT, str(cleanup_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_stop_signals,
    )
    assert proc.stdout.readline().strip() == "body"
    return proc


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_stop_signal_runs_the_cleanup_and_exits_with_128_plus_the_signal(sig):
    proc = start_entry_point(cleanup_s=0)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig
    assert out.split() == ["cleanup", "started", "cleanup", "done"]  # never "after the run"
    assert f"interrupted by {signal.Signals(sig).name}" in err
    assert "no record written" in err


def test_a_second_ctrl_c_does_not_break_off_the_cleanup():
    proc = start_entry_point(cleanup_s=1.0)
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "cleanup started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.strip() == "cleanup done"
    assert proc.returncode == 128 + signal.SIGINT
    assert "Traceback" not in err


def test_an_ignored_signal_stays_ignored():
    # nohup sets SIGHUP to SIG_IGN before exec: a hang-up must not stop the run then.
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY_POINT, "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    try:
        assert proc.stdout.readline().strip() == "body"
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_write_atomically_replaces_the_whole_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("old")
    write_atomically(path, "new record")
    assert path.read_text() == "new record"
    assert os.listdir(tmp_path) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(path, "new record")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["run.json"]


PROGRESS = {"requests": 3, "elapsed_s": 12.44, "remaining_s": 4.2, "met": False}


def test_progress_says_requests_window_time_and_time_to_go():
    assert progress_text("A", PROGRESS, 3, ["A", "B"]) == (
        "slot A 3/3 requests, 12.4 s into the window, ~4 s to go"
    )


def test_an_open_loop_slot_owes_no_request_count():
    assert progress_text("B", PROGRESS, None, ["A", "B"]).startswith(
        "slot B 3 requests (open loop), 12.4 s into the window"
    )


def test_progress_under_a_second_to_go_is_not_rounded_to_zero():
    event = {**PROGRESS, "remaining_s": 0.4}
    assert progress_text("A", event, 3, ["A"]).endswith("<1 s to go")


def test_progress_of_a_slot_that_met_its_criteria_names_the_slots_it_waits_for():
    event = {**PROGRESS, "requests": 5, "remaining_s": 0.0, "met": True}
    assert progress_text("A", event, 3, ["B"]) == (
        "slot A 5/3 requests, 12.4 s into the window, criteria met, waiting for slot B"
    )
    assert progress_text("A", event, 3, []).endswith("criteria met")
