"""Failures end in run records, never in a hung or aborted pipeline: a worker that crashes,
runs out of memory or hangs (injected with DUALBENCH_FAULT, the worker's test hook)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from dualbench import config
from dualbench.measure import runner
from tests.helpers import make_workdir, reuse_results, snakemake, tiny_config

pytestmark = pytest.mark.e2e


def colocated_spec(timeout_s: float = 120) -> dict:
    cfg = tiny_config()
    cfg["run"]["timeout_s"] = timeout_s
    return config.run_spec(config.validate(cfg), "short", "bf16", "colocated")


def models(pipeline) -> dict[str, str]:
    return {s: str(pipeline / f"results/models/{s}/bf16") for s in "AB"}


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("B:crash", "error", "exited with code 3"),
        ("B:oom", "oom", "MemoryError"),
    ],
)
def test_failing_worker_is_recorded_and_the_other_stopped(
    pipeline, tmp_path, monkeypatch, fault, status, message
):
    monkeypatch.setenv("DUALBENCH_FAULT", fault)
    record = runner.run(colocated_spec(), models(pipeline), tmp_path)
    assert record["status"] == status
    assert message in record["error"] and "slot B" in record["error"]
    assert record["slots"]["A"]["result"] is None  # A was stopped, never finished


def test_hanging_worker_times_out(pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("DUALBENCH_FAULT", "B:hang")
    started = time.monotonic()
    record = runner.run(colocated_spec(timeout_s=20), models(pipeline), tmp_path)
    assert record["status"] == "timeout"
    assert "B: loading" in record["error"]
    assert time.monotonic() - started < 60


def test_pipeline_completes_and_reports_a_crashed_run(pipeline, tmp_path):
    cfg = tiny_config()
    del cfg["scenarios"]["mixed"]
    cfg["precisions"] = ["bf16"]  # one precision shows what a crash does to the pipeline
    workdir = make_workdir(tmp_path / "crash", cfg)
    # The failure, not the model build or calibration, is under test.
    reuse_results(pipeline, workdir, "models", "calibration")
    snakemake(workdir, "report", env={"DUALBENCH_FAULT": "B:crash"})
    runs = pd.read_csv(workdir / "results/metrics/runs.csv", keep_default_na=False)
    status = {(r.layout, r.slot): r.status for r in runs.itertuples()}
    assert status[("alone_A", "A")] == "ok"
    assert status[("alone_B", "B")] == "error"
    assert status[("colocated", "B")] == "error"
    assert not runs.query("status == 'error'").valid.any()
    html = (workdir / "results/report/report.html").read_text()
    assert "exited with code 3" in html
    # B's alone run failed, so its sweep has no capacity: only the victim-alone points ran,
    # and the loaded points are recorded as not run, with the reason.
    sweep = pd.read_csv(workdir / "results/metrics/contention.csv")
    assert sweep[sweep["fraction"] == 0]["valid"].all()
    loaded = sweep[sweep["fraction"] > 0]
    assert len(loaded) == 2 and not loaded["valid"].any()
    assert loaded["invalid_reasons"].str.contains("no solo capacity of B").all()


def test_a_stale_result_never_passes_for_a_new_run(pipeline, tmp_path, monkeypatch):
    (tmp_path / "result-A.json").write_text('{"stale": true}')
    monkeypatch.setenv("DUALBENCH_FAULT", "B:crash")
    record = runner.run(colocated_spec(), models(pipeline), tmp_path)
    assert record["status"] == "error"
    assert record["slots"]["A"]["result"] is None
