"""Three models on the tiny pipeline (issue 12): every model alone, a co-located pair, all three
co-located, the pair in lockstep and the pair from one thread, through the real Snakemake
pipeline. The 2 cores are shared by the three workers of the ``colocated`` run (auto slots,
oversubscribed), which is what validation says and the report repeats."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dualbench.analysis.lockstep import turn_stats
from tests.helpers import make_workdir, reuse_results, snakemake

pytestmark = pytest.mark.e2e

TINY = "synthetic:llama-3.2-tiny"
LAYOUTS = [
    "alone_A",
    "alone_B",
    "alone_C",
    "colocated:A+B",
    "colocated",
    "lockstep:A+B",
    "single_thread_streams:A+B",
]
CONFIG = {
    "device": "cpu",
    "models": {name: {"source": TINY, "seed": i} for i, name in enumerate("ABC")},
    "precisions": ["bf16"],
    "layouts": LAYOUTS,
    "scenarios": {
        "short": {
            "prompt_tokens": 16,
            "new_tokens": 8,
            "trial_s": 1.0,
            "min_requests": 2,
            "rounds": 1,
        }
    },
    "calibration": {"repeats": 3, "copy_mib": 8, "matmul_n": 128},
    "telemetry": {"idle_s": 0.5},
    "run": {"timeout_s": 300, "exclusivity": "warn"},  # as tests.helpers' tiny config
    "report": {"title": "three tiny models"},
}


@pytest.fixture(scope="module")
def replicas(pipeline, tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("replicas"), CONFIG)
    reuse_results(pipeline, workdir, "models")  # A and B are the tiny pipeline's; C is built
    result = snakemake(workdir, "report")
    return workdir, result.stdout


def run_record(workdir, layout: str) -> dict:
    return json.loads((workdir / f"results/sessions/short/bf16/r1/{layout}/run.json").read_text())


def test_every_layout_ran_and_validation_said_oversubscribed(replicas):
    workdir, log = replicas
    assert "3 models on 2 usable cores" in log and "oversubscribed" in log
    runs = pd.read_csv(workdir / "results/metrics/runs.csv")
    assert sorted(set(runs.layout)) == sorted(LAYOUTS)
    assert set(runs.status) == {"ok"}
    assert runs.valid.all(), runs.invalid_reasons.tolist()
    # Every slot of "colocated" shares both cores: three workers on two cores.
    record = run_record(workdir, "colocated")
    assert {tuple(s["slot"]["cores"]) for s in record["slots"].values()} == {(0, 1)}


def test_lockstep_steps_never_overlap(replicas):
    workdir, _ = replicas
    record = run_record(workdir, "lockstep:A+B")
    stats = turn_stats(record)
    assert stats["overlaps"] == 0
    assert stats["turns"] >= 4
    assert stats["handoff_us_mean"] > 0


def test_single_thread_calls_serialise(replicas):
    workdir, _ = replicas
    record = run_record(workdir, "single_thread_streams:A+B")
    spans = sorted(
        (call["submit_ns"], call["token_ns"][-1], name)
        for name, slot in record["slots"].items()
        for call in slot["result"]["calls"]
    )
    assert {name for *_, name in spans} == {"A", "B"}
    # One thread: a call starts only after the previous one (of either model) ended.
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def test_scaling_curve_and_interference_for_three(replicas):
    workdir, _ = replicas
    scaling = pd.read_csv(workdir / "results/metrics/scaling.csv")
    free = scaling[scaling.schedule == "free"].set_index("layout")
    assert free.loc["colocated:A+B", "k"] == 2 and free.loc["colocated", "k"] == 3
    runs = pd.read_csv(workdir / "results/metrics/runs.csv")
    alone = runs[runs.layout.str.startswith("alone_")].set_index("slot").throughput_tok_s
    together = runs[runs.layout == "colocated"].throughput_tok_s.sum()
    assert free.loc["colocated", "v_total"] == pytest.approx(together)
    assert free.loc["colocated", "scaling_efficiency"] == pytest.approx(together / alone.sum())
    interference = pd.read_csv(workdir / "results/metrics/interference.csv")
    victims = interference[interference.layout == "colocated"].set_index("victim")
    assert sorted(victims.index) == ["A", "B", "C"]
    assert victims.loc["C", "neighbours"] == "A+B"


def test_report_shows_the_curve_the_matrix_and_the_schedules(replicas):
    workdir, _ = replicas
    html = (workdir / "results/report/report.html").read_text()
    for needle in ("Scaling curve", "Interference matrix", "lockstep", "single_thread_streams"):
        assert needle.lower() in html.lower(), needle
