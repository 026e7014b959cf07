"""Repeat blocks on the tiny model: every block runs every layout once, in a seeded order that
differs from block to block, and every answer carries an interval over the blocks."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from dualbench import config
from dualbench.analysis.metrics import call_end_ns
from dualbench.config.round_order import trial_order
from tests.helpers import REPEATS, planned_jobs, repeats_config, write_config

pytestmark = pytest.mark.e2e
LAYOUTS = ["alone_A", "alone_B", "colocated"]
PRECISIONS = ["bf16", "int4"]


@pytest.fixture(scope="module")
def metrics(pipeline_repeats):
    def read(name):
        return pd.read_csv(pipeline_repeats / "results/metrics" / name)

    return {name: read(f"{name}.csv") for name in ("runs", "answers", "blocks", "scaling")}


def records(workdir, precision: str, repeat: int) -> dict[str, dict]:
    base = workdir / f"results/sessions/short/{precision}/r{repeat}"
    return {lay: json.loads((base / lay / "run.json").read_text()) for lay in LAYOUTS}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_block_runs_every_layout_once_in_its_seeded_order(pipeline_repeats, precision):
    orders = []
    for repeat in range(1, REPEATS + 1):
        recs = records(pipeline_repeats, precision, repeat)
        by_position = sorted(recs.values(), key=lambda r: r["spec"]["position"])
        order = [r["spec"]["layout"] for r in by_position]
        assert sorted(order) == sorted(LAYOUTS)  # a permutation
        assert [r["spec"]["position"] for r in by_position] == [1, 2, 3]
        assert {r["spec"]["repeat"] for r in by_position} == {repeat}
        # Reproducible: the order the seed and the block number give.
        seed = repeats_config()["scenarios"]["short"].get("seed", 0)
        assert order == trial_order(LAYOUTS, seed, "short", precision, repeat)
        # And the order they really ran in: each run released after the previous one ended,
        # at its last token or where the stop cut its last call (which may have no token).
        for before, after in itertools.pairwise(by_position):
            ended = max(call_end_ns(c) for s in before["slots"].values()
                        for c in s["result"]["calls"])  # fmt: skip
            released = min(s["result"]["release_ns"] for s in after["slots"].values())
            assert released > ended
        orders.append(order)
    assert len({tuple(o) for o in orders}) == REPEATS  # different across blocks


def test_runs_table_says_block_and_position(metrics):
    runs = metrics["runs"]
    assert set(runs.repeat) == set(range(1, REPEATS + 1))
    assert set(runs.position) == {1, 2, 3}
    assert runs.valid.all(), runs.invalid_reasons.tolist()
    assert runs.run_id.str.match(r"^short/(bf16|int4)/r[123]/(alone_A|alone_B|colocated)$").all()
    assert (runs.loadavg_1m >= 0).all()


def test_every_answer_has_an_interval_over_the_blocks(metrics):
    answers = metrics["answers"]
    scaling = answers[answers.precision.isin(PRECISIONS)]
    assert {
        "v1",
        "v_total",
        "growth_per_model",
        "scaling_efficiency",
        "slowdown_throughput",
    } <= set(scaling.answer)
    int4 = answers[answers.answer.str.startswith("int4_")]
    assert len(int4) and set(int4.precision) == {"int4"}
    measured = answers[answers.answer != "tokens_per_j"]  # no energy source on every CPU
    assert (measured.n == REPEATS).all(), measured[measured.n != REPEATS]
    assert np.isfinite(measured[["estimate", "lo", "hi"]]).all().all()
    assert (measured.lo <= measured.estimate).all() and (measured.estimate <= measured.hi).all()
    judged = answers[answers.verdict_kind != ""].dropna(subset=["verdict_kind"])
    assert set(judged.verdict_kind) <= {"equivalent", "effect", "inconclusive"}


def test_answers_are_the_blocks_per_block_figures(metrics):
    answers, scaling = metrics["answers"], metrics["scaling"]
    for precision in PRECISIONS:
        per_block = scaling[scaling.precision == precision].sort_values("repeat")
        assert len(per_block) == REPEATS
        row = answers[(answers.precision == precision) & (answers.answer == "scaling_efficiency")]
        geometric = float(np.exp(np.log(per_block.scaling_efficiency).mean()))
        assert row.estimate.item() == pytest.approx(geometric)


def test_blocks_table_records_order_and_machine_state(metrics):
    blocks = metrics["blocks"]
    assert len(blocks) == REPEATS * len(PRECISIONS)
    assert blocks.order.str.count("→").eq(2).all()
    assert (blocks.loadavg_1m >= 0).all()


def test_report_shows_every_verdict(pipeline_repeats, metrics):
    html = (pipeline_repeats / "results/report/report.html").read_text()
    verdicts = set(metrics["answers"].verdict.dropna()) - {""}
    assert verdicts and not [v for v in verdicts if v not in html]
    assert "one round: no interval" not in html


def test_editing_the_rounds_reruns_that_scenarios_sessions(pipeline_repeats):
    """A session's rounds are its cache key: fewer or more of them measure it again (its
    rounds were interleaved with each other, so they are not kept piecemeal)."""
    cfg = repeats_config()
    try:
        cfg["scenarios"]["short"]["rounds"] = REPEATS + 2
        write_config(pipeline_repeats, cfg)
        assert planned_jobs(pipeline_repeats) - {("all", "")} == {
            ("session", "results/sessions/short/bf16"),
            ("session", "results/sessions/short/int4"),
            ("aggregate", "results/metrics/runs.csv"),
            ("report", "results/report/report.html"),
        }
    finally:
        write_config(pipeline_repeats, repeats_config())


def test_a_session_records_its_rounds_and_why_it_stopped(pipeline_repeats, metrics):
    sessions = pd.read_csv(pipeline_repeats / "results/metrics/sessions.csv")
    assert len(sessions) == len(PRECISIONS)
    assert (sessions.rounds == REPEATS).all() and (sessions.stopped == "rounds done").all()
    assert (sessions.trials == REPEATS * len(LAYOUTS)).all()
    assert (sessions.window_seconds <= sessions.seconds).all()
    for precision in PRECISIONS:
        summary = json.loads(
            (pipeline_repeats / f"results/sessions/short/{precision}/session.json").read_text()
        )
        # every verdict-bearing answer's half-width, at the stop
        assert set(summary["half_widths"]) >= {
            "slowdown_throughput colocated/A",
            "slowdown_tpot_p50 colocated/B",
            "scaling_efficiency colocated",
        }
        # loaded once per session, one process per slot
        assert set(summary["processes"]["processes"]) == {"A", "B"}
        for repeat in range(1, REPEATS + 1):
            recs = records(pipeline_repeats, precision, repeat)
            # alone means alone: the idle neighbour computed (next to) nothing
            idle = recs["alone_A"]["idle_processes"]["B"]["cpu_s"]
            window = recs["alone_A"]["elapsed_s"]
            assert idle < 0.05 * window, (idle, window)


def test_the_session_spec_is_the_cache_key_of_its_trials():
    cfg = config.validate(repeats_config())
    spec = config.session_spec(cfg, "short", "bf16")
    assert list(spec["trials"]) == LAYOUTS
    assert spec["rounds"] == REPEATS and spec["baseline"] is None
    assert config.session_spec(cfg, "short", "int4")["baseline"] == "bf16"
