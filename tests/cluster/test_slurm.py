"""The shipped Slurm profile against a real one-node Slurm (tests.cluster.slurm_cluster),
accounting off: the pipeline end to end through sbatch, the cache contract through the
scheduler, a cancelled run job, an interrupted Snakemake, and devices as GRES.

Every sbatch call goes through a logging stand-in on PATH that then runs the real sbatch, so
the tests see exactly what was submitted."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.cluster.common import (
    LOCAL_RULES,
    MEASURING_RULES,
    cluster_config,
    profile_snakemake,
    wait_for,
    why_it_failed,
)
from tests.helpers import REPO, make_workdir, planned_jobs, write_config

pytestmark = pytest.mark.e2e


def filled_profile(cluster, values: dict) -> dict:
    """profiles/slurm/config.yaml with every CHANGE_ME filled in for the test cluster, as a
    user does, plus ``values`` (test-only speed-ups)."""
    shipped = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(shipped)
    cores = cluster.cpus
    profile["cores"] = cores
    profile["default-resources"]["slurm_partition"] = "bench"
    profile["default-resources"]["mem_mb"] = 2000
    for rule in MEASURING_RULES:
        profile["set-threads"][rule] = cores
        profile["set-resources"][rule]["cpus_per_task"] = cores
        profile["set-resources"][rule]["mem_mb"] = 4000
    text = yaml.safe_dump({**profile, **values}, sort_keys=False)
    assert "CHANGE_ME" not in text, "a CHANGE_ME of the shipped profile is not filled in here"
    return {**profile, **values}


def test_shipped_profile_marks_what_a_user_must_edit():
    """The keys the test fills in are the ones the shipped profile marks CHANGE_ME."""
    marked = [
        line.split(":")[0].strip()
        for line in (REPO / "profiles" / "slurm" / "config.yaml").read_text().splitlines()
        if "CHANGE_ME" in line and not line.lstrip().startswith("#")
    ]
    assert sorted(marked) == sorted(
        ["cores", "slurm_partition", "block", "sweep", "calibrate", "cpus_per_task", "mem_mb"]
    )


@pytest.fixture(scope="module")
def submit_env(slurm, tmp_path_factory) -> dict:
    """Environment of a Snakemake on the 'login node': the cluster's config and an sbatch that
    logs each submission before handing it to the real one."""
    shim_dir = tmp_path_factory.mktemp("shim")
    log = shim_dir / "sbatch.jsonl"
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    shim = shim_dir / "sbatch"
    shim.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
    )
    shim.chmod(0o755)
    return {
        **slurm.env,
        "PATH": f"{shim_dir}{os.pathsep}{os.environ['PATH']}",
        "SBATCH_LOG": str(log),
    }


def submissions(env: dict) -> list[dict]:
    """Each sbatch call so far: its rule, wildcards and options."""
    log = Path(env["SBATCH_LOG"])
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        words = json.loads(line)
        comment = words[words.index("--comment") + 1]
        m = re.match(r"rule_(\w+?)(?:_wildcards_(.*))?$", comment)
        out.append({"rule": m.group(1), "wildcards": m.group(2) or "", "argv": words})
    return out


def slurm_snakemake(workdir: Path, env: dict, *args: str, background: bool = False):
    # Test speed: the first status query after 1 s instead of 40. The plugin falls back to
    # sacct only when MinJobAge (300 s) is below 3 × this: it keeps squeue.
    options = ["--slurm-init-seconds-before-status-checks", "1"]
    return profile_snakemake(workdir, env, options, *args, background=background)


@pytest.fixture(scope="module")
def cluster_run(slurm, submit_env, tmp_path_factory):
    """The small pipeline, run once through the profile: (workdir, planned jobs, output)."""
    workdir = make_workdir(tmp_path_factory.mktemp("slurm_pipeline"), cluster_config())
    profile_dir = workdir / "profile"
    profile_dir.mkdir()
    (profile_dir / "config.yaml").write_text(
        yaml.safe_dump(filled_profile(slurm, {}), sort_keys=False)
    )
    planned = planned_jobs(workdir)
    started = time.monotonic()
    done = slurm_snakemake(workdir, submit_env, "report")
    assert done.returncode == 0, why_it_failed(done, workdir)
    print(f"pipeline through Slurm: {time.monotonic() - started:.0f} s")
    return workdir, planned, done.stdout


def test_every_job_goes_through_sbatch(cluster_run, submit_env):
    workdir, planned, _ = cluster_run
    subs = submissions(submit_env)
    rules = sorted(s["rule"] for s in subs)
    expected = sorted(rule for rule, _ in planned if rule not in LOCAL_RULES)
    assert rules == expected
    for sub in subs:
        if sub["rule"] in MEASURING_RULES:
            assert "--exclusive" in " ".join(sub["argv"]), sub["argv"]
    # The CPU config asks for no devices.
    assert not any("--gres" in " ".join(s["argv"]) for s in subs)


def test_outputs_match_a_local_run(cluster_run, pipeline):
    """Same files as the local tiny pipeline, restricted to this config's scenario and
    precision (the local one has more of both)."""
    workdir, _, _ = cluster_run

    def tree(root: Path) -> set[str]:
        return {
            str(p.relative_to(root))
            for p in (root / "results").rglob("*")
            if p.is_file() and "/mixed/" not in str(p) and "int4" not in str(p)
        }

    assert tree(workdir) == tree(pipeline)


def test_runs_are_ok_and_valid(cluster_run):
    workdir, _, _ = cluster_run
    runs = pd.read_csv(workdir / "results" / "metrics" / "runs.csv")
    # alone_A, alone_B and the two slots of colocated
    assert len(runs) == 4
    assert set(runs.status) == {"ok"}
    assert runs.valid.all(), runs.invalid_reasons.tolist()
    assert len(list((workdir / "results" / "sweeps").rglob("run.json"))) == 3
    assert (workdir / "results" / "report" / "report.html").stat().st_size > 0


def test_second_invocation_submits_nothing(cluster_run, submit_env):
    workdir, _, _ = cluster_run
    before = len(submissions(submit_env))
    again = slurm_snakemake(workdir, submit_env, "report")
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(submissions(submit_env)) == before


def test_config_edit_resubmits_exactly_the_cache_contract(cluster_run, submit_env):
    """Calibration settings feed only the calibrations: both are submitted again, nothing
    else is (aggregate and report rerun locally)."""
    workdir, _, _ = cluster_run
    cfg = cluster_config()
    cfg["calibration"]["repeats"] += 1
    write_config(workdir, cfg)
    planned = planned_jobs(workdir)
    assert {rule for rule, _ in planned} == {"calibrate", "aggregate", "report"}
    before = len(submissions(submit_env))
    done = slurm_snakemake(workdir, submit_env, "report")
    assert done.returncode == 0, done.stdout[-3000:]
    new = submissions(submit_env)[before:]
    assert sorted(s["rule"] for s in new) == sorted(
        rule for rule, _ in planned if rule not in LOCAL_RULES
    )
    assert sorted(s["wildcards"] for s in new) == ["A_bfloat16", "B_bfloat16"]


def running_job(slurm, rule: str) -> str | None:
    for job in slurm.queue():
        if job["comment"].startswith(f"rule_{rule}") and job["state"] == "RUNNING":
            return job["id"]
    return None


def job_pids(job_id: str) -> list[int]:
    """Every process of a Slurm job on this node: Slurm sets SLURM_JOB_ID in each one's
    environment (slurmstepd itself, which holds the job's state, is not among them)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if f"SLURM_JOB_ID={job_id}\0".encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
    return pids


def job_state(slurm, job_id: str) -> str:
    return next((job["state"] for job in slurm.queue() if job["id"] == job_id), "")


BLOCK_RUN = "results/runs/short/bf16/r1/alone_A/run.json"


SWEEP = "results/sweeps/short/bf16/r1"


def start_in_background(workdir: Path, slurm, env: dict, rule: str, target: str):
    """Snakemake redoing ``rule``'s (unchanged) job, once it runs: (process, job id)."""
    proc = slurm_snakemake(workdir, env, "--forcerun", rule, target, background=True)
    return proc, wait_for(lambda: running_job(slurm, rule), 300, f"running {rule} job")


def test_killed_snakemake_leaves_incomplete_output_that_the_next_run_redoes(
    cluster_run, slurm, submit_env
):
    """The login session dies, and so does the job, all at once, as when its node fails:
    no process gets to clean up, and the sweep's folder (its one output) keeps the points it
    had written. Plain Snakemake refuses to go on; the profile's rerun-incomplete redoes the
    sweep. (`scancel`, even with SIGKILL, leaves the job's own Snakemake time to remove the
    partial folder, as Snakemake does for any failed job: nothing is incomplete then.)"""
    workdir = cluster_run[0]
    started = time.time()
    proc, job = start_in_background(workdir, slurm, submit_env, "sweep", SWEEP)

    def first_point_written():
        return any(p.stat().st_mtime > started for p in (workdir / SWEEP).rglob("run.json"))

    wait_for(first_point_written, 300, "point of the sweep")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    # The node "fails": every process of the job stopped first, so none reacts to another's
    # death, then killed.
    pids = job_pids(job)
    assert pids
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    wait_for(lambda: job_state(slurm, job) not in ("RUNNING", "COMPLETING"), 60, "dead job")
    slurm.wait_until_idle(60)
    assert 1 <= len(list((workdir / SWEEP).rglob("run.json"))) < 3

    unlocked = slurm_snakemake(workdir, submit_env, "--unlock")
    assert unlocked.returncode == 0, unlocked.stdout[-2000:]
    plain = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "none", "-n", "-c1", SWEEP],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert plain.returncode != 0
    assert "IncompleteFilesException" in plain.stdout + plain.stderr, plain.stdout[-2000:]

    before = len(submissions(submit_env))
    done = slurm_snakemake(workdir, submit_env, SWEEP)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [s["rule"] for s in submissions(submit_env)[before:]] == ["sweep"]
    points = [json.loads(p.read_text()) for p in (workdir / SWEEP).rglob("run.json")]
    assert len(points) == 3 and {p["status"] for p in points} == {"ok"}


def test_ctrl_c_cancels_the_running_job(cluster_run, slurm, submit_env):
    workdir = cluster_run[0]
    proc, job = start_in_background(workdir, slurm, submit_env, "block", BLOCK_RUN)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    wait_for(lambda: job_state(slurm, job) == "CANCELLED", 60, "cancelled block job")
    slurm.wait_until_idle(60)


def test_cancelled_run_job_is_reported_and_rerun(cluster_run, slurm, submit_env):
    """`scancel` of a block mid-run: Snakemake names the job and its state, and the next
    invocation submits the block again and completes it."""
    workdir = cluster_run[0]
    cfg = cluster_config()
    cfg["scenarios"]["short"]["duration_s"] = 1.5  # the block's cache key: it reruns
    write_config(workdir, cfg)
    proc = slurm_snakemake(workdir, submit_env, BLOCK_RUN, background=True)
    job = wait_for(lambda: running_job(slurm, "block"), 300, "running block job")
    slurm.run("scancel", job, check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in out, out[-3000:]
    assert "Error in rule block" in out

    # The node stays "completing" until the cancelled job's processes are gone; the next
    # block would rightly find its cores busy before that.
    slurm.wait_until_idle(60)
    before = len(submissions(submit_env))
    done = slurm_snakemake(workdir, submit_env, BLOCK_RUN)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [s["rule"] for s in submissions(submit_env)[before:]] == ["block"]
    assert json.loads((workdir / BLOCK_RUN).read_text())["status"] == "ok"


def npu_workdir(cluster_run, tmp_path: Path, devices: list[str]) -> Path:
    """An NPU config on the test cluster, with the CPU run's converted models copied in (a
    model's conversion does not depend on the device), so only the block is submitted."""
    cfg = cluster_config(sweep=False)
    cfg.update(device="npu", slots=devices)
    workdir = make_workdir(tmp_path, cfg)
    (workdir / "results").mkdir()
    subprocess.run(
        ["cp", "-a", str(cluster_run[0] / "results" / "models"), str(workdir / "results")],
        check=True,
    )
    subprocess.run(["cp", "-a", str(cluster_run[0] / "profile"), str(workdir)], check=True)
    return workdir


def test_npu_slots_ask_slurm_for_their_npus(cluster_run, slurm, submit_env, tmp_path):
    """Slots npu:0 and npu:1 → --gres=npu:2, which the node's two fake NPUs satisfy: the
    block is scheduled and starts, holding both. (There is no NPU software here, so once
    started it could only fail with its one line; Ctrl-C ends it then.)"""
    workdir = npu_workdir(cluster_run, tmp_path, ["npu:0", "npu:1"])
    before = len(submissions(submit_env))
    proc = slurm_snakemake(workdir, submit_env, BLOCK_RUN, background=True)
    job = wait_for(lambda: running_job(slurm, "block"), 120, "running block job")
    shown = slurm.run("scontrol", "show", "job", job).stdout
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    (block,) = submissions(submit_env)[before:]
    assert block["rule"] == "block"
    assert "--gres=npu:2" in block["argv"], block["argv"]
    assert "TresPerNode=gres:npu:2" in shown, shown  # running, holding both
    slurm.wait_until_idle(60)


def test_more_npus_than_a_node_has_are_refused_with_slurms_reason(
    cluster_run, slurm, submit_env, tmp_path
):
    """Slots naming npu:2 need three NPUs; no node has three: sbatch refuses and Snakemake
    says why, before anything runs."""
    workdir = npu_workdir(cluster_run, tmp_path, ["npu:0", "npu:2"])
    done = slurm_snakemake(workdir, submit_env, BLOCK_RUN)
    assert done.returncode != 0
    assert "--gres=npu:3" in done.stdout
    assert "Requested node configuration is not available" in done.stdout, done.stdout[-3000:]
