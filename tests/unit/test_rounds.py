"""How a measuring session decides its rounds (dualbench.measure.rounds.run_session), on warm
processes stood in for: a count, the stopping rule's target, and the budget with its floor of
two rounds. The trials measure nothing; what is under test is when the session stops and what
session.json says about it."""

from __future__ import annotations

import json

import pytest

from dualbench import config
from dualbench.measure import rounds as rounds_module
from dualbench.measure.rounds import FLOOR_ROUNDS, SESSION_FILE, run_session
from tests.helpers import RecordingSession, tiny_config

MODELS = {"A": "no model", "B": "no model"}


class Judge:
    """The analysis' verdict over the records so far: met from ``met_from`` rounds on, with a
    half-width that shrinks by round; notes how many rounds each call saw."""

    def __init__(self, met_from: int):
        self.met_from, self.seen = met_from, []

    def __call__(self, records):
        rounds = max(r["spec"]["repeat"] for r in records)
        self.seen.append(rounds)
        return {"met": rounds >= self.met_from, "answers": {"slowdown": 0.1 / rounds}}


@pytest.fixture
def session(monkeypatch):
    monkeypatch.setattr(rounds_module, "Session", RecordingSession([]))
    # mixed: no sweep, so no solo capacity is needed
    return config.session_spec(config.validate(tiny_config()), "mixed", "bf16")


def summary_of(tmp_path):
    return json.loads((tmp_path / "out" / SESSION_FILE).read_text())


def test_auto_stops_at_the_target_once_min_rounds_have_run(session, tmp_path):
    session = {**session, "rounds": "auto", "max_s": 1e6}
    judge = Judge(met_from=2)  # met early; the rule may not look before min_rounds
    run_session(session, MODELS, tmp_path / "out", tmp_path / "w", judge=judge)
    summary = summary_of(tmp_path)
    assert summary["rounds"] == session["min_rounds"] == judge.seen[0]
    assert summary["stopped"] == "target met" and summary["target_met"] is True
    assert summary["half_widths"] == {"slowdown": pytest.approx(0.1 / session["min_rounds"])}


def test_a_spent_budget_still_runs_two_rounds_and_records_their_half_widths(session, tmp_path):
    session = {**session, "rounds": "auto", "max_s": 0.0}
    judge = Judge(met_from=1)  # inside the target, but before min_rounds: not the rule's
    run_session(session, MODELS, tmp_path / "out", tmp_path / "w", judge=judge)
    summary = summary_of(tmp_path)
    assert summary["rounds"] == FLOOR_ROUNDS == 2
    assert summary["stopped"] == "budget spent" and summary["target_met"] is False
    assert summary["half_widths"] == {"slowdown": pytest.approx(0.05)}  # over both rounds
    assert sorted(p.name for p in (tmp_path / "out").glob("r*")) == ["r1", "r2"]


def test_a_count_runs_exactly_that_many_rounds_whatever_the_budget(session, tmp_path):
    session = {**session, "rounds": 3, "max_s": 0.0}
    judge = Judge(met_from=1)
    run_session(session, MODELS, tmp_path / "out", tmp_path / "w", judge=judge)
    summary = summary_of(tmp_path)
    assert summary["rounds"] == 3 and summary["stopped"] == "rounds done"
    assert judge.seen == [3]  # judged once, over all of them
