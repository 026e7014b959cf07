"""Every job of the pipeline declares its log under logs/<rule>/, the block and sweep jobs their
workers' log directory too (a calibration its probes'), and nothing but plain results lands
under results/runs/ and results/sweeps/."""

from __future__ import annotations

import re

from tests.helpers import snakemake

JOB = re.compile(r"^(?:local)?rule (\w+):$", re.M)


def job_blocks(text: str) -> list[tuple[str, str]]:
    """(rule, block) of every job in a dry run's output."""
    starts = list(JOB.finditer(text))
    return [
        (m.group(1), text[m.end() : starts[i + 1].start() if i + 1 < len(starts) else None])
        for i, m in enumerate(starts)
    ]


def test_every_job_declares_its_log(pipeline):
    jobs = [(r, b) for r, b in job_blocks(snakemake(pipeline, "-n", "--forceall").stdout)
            if r != "all"]  # fmt: skip
    rules = {"fetch_model", "convert", "calibrate", "block", "sweep", "aggregate", "report"}
    assert {r for r, _ in jobs} == rules
    for rule, block in jobs:
        logs = re.search(r"^\s*log: (.+)$", block, re.M)
        assert logs, f"a {rule} job declares no log:\n{block}"
        paths = [p.strip() for p in logs.group(1).split(",")]
        assert all(p.startswith(f"logs/{rule}") for p in paths), paths
        if rule in ("block", "sweep", "calibrate"):
            beside = ".probes" if rule == "calibrate" else ".workers"
            assert len(paths) == 2 and paths[1] == paths[0].removesuffix(".log") + beside


def test_finished_runs_hold_only_their_record_and_telemetry(pipeline):
    run_dirs = {p.parent for p in (pipeline / "results/runs").rglob("run.json")}
    assert run_dirs
    for run_dir in run_dirs:
        assert sorted(p.name for p in run_dir.iterdir()) == ["run.json", "telemetry.csv"]
        # results/runs/<scenario>/<precision>/r<repeat>/<layout> ->
        # logs/block/<scenario>/<precision>/r<repeat>.workers/<layout>/worker-<slot>.log
        scenario, precision, repeat, layout = run_dir.relative_to(pipeline / "results/runs").parts
        workers = pipeline / "logs/block" / scenario / precision / f"{repeat}.workers" / layout
        assert sorted(p.name for p in workers.glob("worker-*.log"))


def test_sweep_points_hold_only_their_record_and_telemetry(pipeline):
    point_dirs = {p.parent for p in (pipeline / "results/sweeps").rglob("run.json")}
    assert point_dirs
    for point_dir in point_dirs:
        assert sorted(p.name for p in point_dir.iterdir()) == ["run.json", "telemetry.csv"]
        scenario, precision, repeat, point = point_dir.relative_to(
            pipeline / "results/sweeps"
        ).parts
        workers = pipeline / "logs/sweep" / scenario / precision / f"{repeat}.workers" / point
        assert sorted(p.name for p in workers.glob("worker-*.log"))
