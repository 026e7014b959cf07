"""Every job of the pipeline declares its log under logs/<rule>/, the session jobs their
workers' log directory too (a calibration its probes'), and nothing but plain results lands
under results/sessions/."""

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
    rules = {"fetch_model", "convert", "calibrate", "session", "aggregate", "report"}
    assert {r for r, _ in jobs} == rules
    for rule, block in jobs:
        logs = re.search(r"^\s*log: (.+)$", block, re.M)
        assert logs, f"a {rule} job declares no log:\n{block}"
        paths = [p.strip() for p in logs.group(1).split(",")]
        assert all(p.startswith(f"logs/{rule}") for p in paths), paths
        if rule in ("session", "calibrate"):
            beside = ".probes" if rule == "calibrate" else ".workers"
            assert len(paths) == 2 and paths[1] == paths[0].removesuffix(".log") + beside


def test_a_session_holds_only_its_summary_and_its_trials_records_and_telemetry(pipeline):
    sessions = [p.parent for p in (pipeline / "results/sessions").rglob("session.json")]
    assert len(sessions) == 4  # 2 scenarios x 2 precisions
    for session in sessions:
        # (Snakemake stamps a directory output with .snakemake_timestamp)
        assert sorted(p.name for p in session.iterdir() if not p.name.startswith(".")) == [
            "r1",
            "session.json",
        ]
        trial_dirs = {p.parent for p in session.rglob("run.json")}
        assert trial_dirs
        for trial_dir in trial_dirs:
            assert sorted(p.name for p in trial_dir.iterdir()) == ["run.json", "telemetry.csv"]
        # results/sessions/<scenario>/<precision> -> logs/session/<scenario>/<precision>.workers:
        # one log per worker process of the session, whatever its trials
        scenario, precision = session.relative_to(pipeline / "results/sessions").parts
        workers = pipeline / "logs/session" / scenario / f"{precision}.workers"
        assert sorted(p.name for p in workers.glob("worker-*.log")) == [
            "worker-A.log",
            "worker-B.log",
        ]
