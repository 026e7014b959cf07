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
import shutil
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
        ["cores", "slurm_partition", "session", "calibrate", "cpus_per_task", "mem_mb"]
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
    # One round of the session: its three sweep points beside its layouts.
    assert len(list((workdir / SESSION / "r1").glob("sweep/f*/run.json"))) == 3
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


# The measuring session of the small config: one folder, written trial by trial.
SESSION = "results/sessions/short/bf16"
# Its trials: three layouts and three sweep points, in one round.
SESSION_TRIALS = 6


def start_in_background(workdir: Path, slurm, env: dict, rule: str, target: str):
    """Snakemake redoing ``rule``'s (unchanged) job, once it runs: (process, job id)."""
    proc = slurm_snakemake(workdir, env, "--forcerun", rule, target, background=True)
    return proc, wait_for(lambda: running_job(slurm, rule), 300, f"running {rule} job")


def test_killed_snakemake_leaves_incomplete_output_that_the_next_run_redoes(
    cluster_run, slurm, submit_env
):
    """The login session dies, and so does the job, all at once, as when its node fails:
    no process gets to clean up, and the session's folder (its one output) keeps the trials it
    had written. Plain Snakemake refuses to go on; the profile's rerun-incomplete redoes the
    session. (`scancel`, even with SIGKILL, leaves the job's own Snakemake time to remove the
    partial folder, as Snakemake does for any failed job: nothing is incomplete then.)"""
    workdir = cluster_run[0]
    started = time.time()
    proc, job = start_in_background(workdir, slurm, submit_env, "session", SESSION)

    def first_trial_written():
        return any(p.stat().st_mtime > started for p in (workdir / SESSION).rglob("run.json"))

    wait_for(first_trial_written, 300, "trial of the session")
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
    assert 1 <= len(list((workdir / SESSION).rglob("run.json"))) < SESSION_TRIALS
    assert not (workdir / SESSION / "session.json").exists()

    unlocked = slurm_snakemake(workdir, submit_env, "--unlock")
    assert unlocked.returncode == 0, unlocked.stdout[-2000:]
    plain = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "none", "-n", "-c1", SESSION],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert plain.returncode != 0
    assert "IncompleteFilesException" in plain.stdout + plain.stderr, plain.stdout[-2000:]

    before = len(submissions(submit_env))
    done = slurm_snakemake(workdir, submit_env, SESSION)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [s["rule"] for s in submissions(submit_env)[before:]] == ["session"]
    trials = [json.loads(p.read_text()) for p in (workdir / SESSION).rglob("run.json")]
    assert len(trials) == SESSION_TRIALS and {t["status"] for t in trials} == {"ok"}
    assert json.loads((workdir / SESSION / "session.json").read_text())["rounds"] == 1


# The plugin's status query comes at least 11 s after the previous one ended, once it has a
# job: its interval starts at --slurm-init-seconds-before-status-checks (1 s) and grows by 10 s
# after every query that finds the job unfinished. Within QUIET_S of a query's end, Snakemake
# is between two queries; QUERY_SETTLE_S after it, Snakemake has put its jobs back in its list.
QUIET_S = 8
QUERY_SETTLE_S = 0.5


def logged_squeue(directory: Path) -> Path:
    """A squeue stand-in in ``directory`` (to go first on PATH) that runs the real one and
    logs each call: a line when it starts, a line with what it answered when it ends. Returns
    the log."""
    log = directory / "squeue.jsonl"
    real = shutil.which("squeue")
    shim = directory / "squeue"
    shim.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, subprocess, sys, time\n"
        "def note(**entry):\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        f.write(json.dumps({'pid': os.getpid(), 'at': time.time(), **entry}) + '\\n')\n"
        "note(event='start')\n"
        f"done = subprocess.run([{real!r}, *sys.argv[1:]], capture_output=True, text=True)\n"
        "note(event='end', out=done.stdout)\n"
        "sys.stdout.write(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    shim.chmod(0o755)
    return log


def between_status_queries(log: Path, job: str) -> bool:
    """Whether Snakemake holds ``job`` in its list of active jobs now: its last status query
    has ended, listed the job (so Snakemake had recorded the job's id: it queries only for jobs
    it has), and ended QUERY_SETTLE_S to QUIET_S ago."""
    if not log.exists():
        return False
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    if not entries or entries[-1]["event"] != "end":
        return False  # no query yet, or one under way
    listed = [line.split("|")[0] for line in entries[-1]["out"].splitlines()]
    return job in listed and QUERY_SETTLE_S <= time.time() - entries[-1]["at"] <= QUIET_S


def job_story(slurm, job: str) -> str:
    """What Slurm knows of ``job``, for a failed assertion: squeue's state, `scontrol show job`
    and slurmctld's log lines about it (a `REQUEST_KILL_JOB` line is a scancel)."""
    shown = slurm.run("scontrol", "show", "job", job).stdout.strip()
    log = slurm.root / "log" / "slurmctld.log"
    lines = log.read_text().splitlines() if log.exists() else []
    mine = [line for line in lines if re.search(rf"JobId={job}\b", line)]
    return (
        f"squeue: {job_state(slurm, job) or '(not listed)'}\n"
        f"scontrol show job {job}:\n{shown}\n"
        "slurmctld.log:\n" + "\n".join(mine[-10:])
    )


def test_ctrl_c_cancels_the_running_job(cluster_run, slurm, submit_env, tmp_path):
    """Ctrl-C of the Snakemake whose session job runs: Snakemake scancels the job.

    Ctrl-C comes once Snakemake holds the job in its list of active jobs, the list its cancel
    hands to scancel. Twice in a job's life it is not there, for a fraction of a second, in
    Snakemake's executor interface and the slurm plugin (not here): from sbatch's submission
    until Snakemake has read the job id, and during each status query (the executor takes its
    jobs out of the list while it queries). A Ctrl-C then ends Snakemake without a scancel and
    the job runs on. Both moments come right after the submission, when the test used to press
    Ctrl-C (as soon as squeue showed the job running): on a loaded machine it sometimes hit
    one, and the job ended COMPLETED or FAILED, never CANCELLED. So the test waits for
    Snakemake's first status query that lists the job, and presses Ctrl-C just after it."""
    workdir = cluster_run[0]
    queries = logged_squeue(tmp_path)
    env = {**submit_env, "PATH": f"{tmp_path}{os.pathsep}{submit_env['PATH']}"}
    proc, job = start_in_background(workdir, slurm, env, "session", SESSION)
    wait_for(
        lambda: job_state(slurm, job) == "RUNNING" and between_status_queries(queries, job),
        60,
        f"moment between Snakemake's status queries with job {job} running",
    )
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    # squeue --states=all lists a finished job for MinJobAge (300 s): a cancelled one shows
    # COMPLETING while its processes end, then CANCELLED. A job that Ctrl-C did not cancel runs
    # on and ends COMPLETED or FAILED instead.
    try:
        wait_for(lambda: job_state(slurm, job) == "CANCELLED", 60, f"cancelled session job {job}")
    except AssertionError as missed:
        story = f"{job_story(slurm, job)}\n--- the end of Snakemake's output\n{out[-2000:]}"
        raise AssertionError(f"{missed}\n{story}") from None
    slurm.wait_until_idle(60)


def test_cancelled_run_job_is_reported_and_rerun(cluster_run, slurm, submit_env):
    """`scancel` of a session mid-run: Snakemake names the job and its state, and the next
    invocation submits the session again and completes it."""
    workdir = cluster_run[0]
    cfg = cluster_config()
    cfg["scenarios"]["short"]["trial_s"] = 1.5  # the session's cache key: it reruns
    write_config(workdir, cfg)
    proc = slurm_snakemake(workdir, submit_env, SESSION, background=True)
    job = wait_for(lambda: running_job(slurm, "session"), 300, "running session job")
    slurm.run("scancel", job, check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in out, out[-3000:]
    assert "Error in rule session" in out

    # The node stays "completing" until the cancelled job's processes are gone; the next
    # session would rightly find its cores busy before that.
    slurm.wait_until_idle(60)
    before = len(submissions(submit_env))
    done = slurm_snakemake(workdir, submit_env, SESSION)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [s["rule"] for s in submissions(submit_env)[before:]] == ["session"]
    trials = [json.loads(p.read_text()) for p in (workdir / SESSION).rglob("run.json")]
    assert len(trials) == SESSION_TRIALS and {t["status"] for t in trials} == {"ok"}


def npu_workdir(cluster_run, tmp_path: Path, devices: list[str]) -> Path:
    """An NPU config on the test cluster, with the CPU run's converted models copied in (a
    model's conversion does not depend on the device), so only the session is submitted."""
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
    session is scheduled and starts, holding both. (There is no NPU software here, so once
    started it could only fail with its one line; Ctrl-C ends it then.)"""
    workdir = npu_workdir(cluster_run, tmp_path, ["npu:0", "npu:1"])
    before = len(submissions(submit_env))
    proc = slurm_snakemake(workdir, submit_env, SESSION, background=True)
    job = wait_for(lambda: running_job(slurm, "session"), 120, "running session job")
    shown = slurm.run("scontrol", "show", "job", job).stdout
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    (session,) = submissions(submit_env)[before:]
    assert session["rule"] == "session"
    assert "--gres=npu:2" in session["argv"], session["argv"]
    assert "TresPerNode=gres:npu:2" in shown, shown  # running, holding both
    slurm.wait_until_idle(60)


def test_more_npus_than_a_node_has_are_refused_with_slurms_reason(
    cluster_run, slurm, submit_env, tmp_path
):
    """Slots naming npu:2 need three NPUs; no node has three: sbatch refuses and Snakemake
    says why, before anything runs."""
    workdir = npu_workdir(cluster_run, tmp_path, ["npu:0", "npu:2"])
    done = slurm_snakemake(workdir, submit_env, SESSION)
    assert done.returncode != 0
    assert "--gres=npu:3" in done.stdout
    assert "Requested node configuration is not available" in done.stdout, done.stdout[-3000:]
