"""The shipped Donau profile, through the real executor plugin, against a stand-in for
dsub/djob/dkill (tests/cluster/donau_bin: it runs jobs on this machine and answers as Donau
does, one node, exclusive jobs alone). What is tested is ours and the plugin's side: the
profile's options, the dsub lines our rules produce, states read back, a killed job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.cluster.common import LOCAL_RULES, MEASURING_RULES, cluster_config, wait_for
from tests.helpers import REPO, make_workdir, planned_jobs, write_config

pytestmark = pytest.mark.e2e

STANDIN = Path(__file__).parent / "donau_bin"
SHIPPED = REPO / "profiles" / "donau" / "config.yaml"


def filled_profile(cores: int) -> dict:
    """profiles/donau/config.yaml with every CHANGE_ME filled in, as a user does."""
    profile = yaml.safe_load(SHIPPED.read_text())
    profile["cores"] = cores
    profile["default-resources"]["queue"] = "default"
    profile["default-resources"]["mem_mb"] = 2000
    for rule in MEASURING_RULES:
        profile["set-threads"][rule] = cores
        profile["set-resources"][rule]["mem_mb"] = 4000
    assert "CHANGE_ME" not in yaml.safe_dump(profile)
    return profile


def test_shipped_profile_marks_what_a_user_must_edit():
    marked = [
        line.split(":")[0].strip()
        for line in SHIPPED.read_text().splitlines()
        if "CHANGE_ME" in line and not line.lstrip().startswith("#")
    ]
    assert sorted(marked) == sorted(["cores", "queue", "block", "sweep", "calibrate", "mem_mb"])


@pytest.fixture(scope="module")
def donau(tmp_path_factory):
    """(work dir, environment with the stand-in on PATH, dry-run jobs, output of the run)."""
    state = tmp_path_factory.mktemp("donau_state")
    env = {
        "DONAU_STANDIN_DIR": str(state),
        "PATH": f"{STANDIN}{os.pathsep}{os.environ['PATH']}",
    }
    workdir = make_workdir(tmp_path_factory.mktemp("donau_pipeline"), cluster_config(False))
    (workdir / "profile").mkdir()
    cores = len(os.sched_getaffinity(0))
    (workdir / "profile" / "config.yaml").write_text(yaml.safe_dump(filled_profile(cores)))
    planned = planned_jobs(workdir)
    started = time.monotonic()
    done = donau_snakemake(workdir, env, "report")
    assert done.returncode == 0, done.stdout[-6000:]
    print(f"pipeline through the Donau stand-in: {time.monotonic() - started:.0f} s")
    return workdir, env, planned


def donau_snakemake(workdir: Path, env: dict, *args: str, background: bool = False):
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        str(workdir / "profile"),
        # Test speed: ask the stand-in every second, not every 10 s.
        "--seconds-between-status-checks",
        "1",
        *args,
    ]
    kwargs = dict(
        cwd=workdir,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if background:
        return subprocess.Popen(command, start_new_session=True, **kwargs)
    return subprocess.run(command, timeout=600, **kwargs)


def submissions(env: dict) -> list[dict]:
    log = Path(env["DONAU_STANDIN_DIR"]) / "submissions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def rule_of(submission: dict) -> str:
    # The plugin names each job smk_<rule>_<first 8 characters of its run id>.
    return submission["options"]["-n"].removeprefix("smk_").rsplit("_", 1)[0]


def test_every_job_goes_through_dsub(donau):
    _, env, planned = donau
    subs = submissions(env)
    assert sorted(rule_of(s) for s in subs) == sorted(
        rule for rule, _ in planned if rule not in LOCAL_RULES
    )
    cores = len(os.sched_getaffinity(0))
    for sub in subs:
        options = sub["options"]
        assert options["-q"] == "default"
        if rule_of(sub) in MEASURING_RULES:
            assert options.get("-x") == "job", sub
            assert options["-R"] == f"cpu={cores},mem=4000MB", sub
            assert options["-T"] == "7200"  # the profile's 120 minutes
        else:
            assert "-x" not in options and options["-R"] == "cpu=1,mem=2000MB", sub


def test_runs_are_ok_and_valid(donau):
    workdir, _, _ = donau
    runs = pd.read_csv(workdir / "results" / "metrics" / "runs.csv")
    assert len(runs) == 4 and set(runs.status) == {"ok"}
    assert runs.valid.all(), runs.invalid_reasons.tolist()
    for record in (workdir / "results" / "runs").rglob("run.json"):
        assert json.loads(record.read_text())["exclusivity"]["verdict"] == "clear"
    assert (workdir / "results" / "report" / "report.html").stat().st_size > 0


def test_second_invocation_submits_nothing(donau):
    workdir, env, _ = donau
    before = len(submissions(env))
    again = donau_snakemake(workdir, env, "report")
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(submissions(env)) == before


def test_a_killed_job_is_reported_and_submitted_again(donau):
    """dkill of a running block (as an operator does): Snakemake names the job and Donau's
    state, and the next invocation submits the block again."""
    workdir, env, _ = donau
    cfg = cluster_config(False)
    cfg["scenarios"]["short"]["duration_s"] = 1.5  # the block's cache key: it reruns
    write_config(workdir, cfg)
    target = "results/runs/short/bf16/r1/alone_A/run.json"
    proc = donau_snakemake(workdir, env, target, background=True)
    jobs = Path(env["DONAU_STANDIN_DIR"]) / "jobs"

    def running_block():
        for path in jobs.glob("*.json"):
            job = json.loads(path.read_text())
            if job["name"].startswith("smk_block_") and job["state"] == "RUNNING":
                return job["id"]
        return None

    job_id = wait_for(running_block, 120, "running block job")
    subprocess.run(["dkill", "-y", "--force", job_id], env={**os.environ, **env}, check=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"Donau job {job_id} failed with state TERMINATED" in out, out[-3000:]

    before = len(submissions(env))
    done = donau_snakemake(workdir, env, target)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [rule_of(s) for s in submissions(env)[before:]] == ["block"]
    assert json.loads((workdir / target).read_text())["status"] == "ok"
