"""The worker's stop rule, and its protocol channel kept apart from library output."""

from __future__ import annotations

import json
import subprocess
import sys

from dualbench.worker import criteria_met


def test_criteria_need_both_duration_and_requests():
    assert not criteria_met(calls=5, batch_size=1, min_requests=3, now_ns=99, deadline_ns=100)
    assert not criteria_met(calls=2, batch_size=1, min_requests=3, now_ns=100, deadline_ns=100)
    assert criteria_met(calls=3, batch_size=1, min_requests=3, now_ns=100, deadline_ns=100)


def test_min_requests_counts_requests_not_calls():
    # batch 8: two calls are 16 requests
    assert not criteria_met(calls=1, batch_size=8, min_requests=16, now_ns=1, deadline_ns=0)
    assert criteria_met(calls=2, batch_size=8, min_requests=16, now_ns=1, deadline_ns=0)


def test_library_prints_cannot_corrupt_the_protocol_channel():
    code = (
        "from dualbench.worker import Protocol\n"
        "p = Protocol()\n"
        "print('chatter from a library')\n"
        "p.send('ready', load_s=1.5)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input="", capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"event": "ready", "load_s": 1.5}
    ]
    assert "chatter from a library" in out.stderr
