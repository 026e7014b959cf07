"""Stops from outside end a run at once and leave nothing that passes for a result: Ctrl-C of
Snakemake, SIGTERM or SIGKILL of the runner (the issue: workers computed on for minutes after
Ctrl-C, or were orphaned). The window is long (LONG_S): within the tests' waits, only a stop can
end it. Every test waits for the measuring window, so the workers are stopped mid-request."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from dualbench import config
from tests.helpers import REPO, make_workdir, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e

LONG_S = 60
GONE_WITHIN_S = 5
# The workstation profile, as a user gets it from the repository's root (rerun-incomplete).
PROFILE = ("--workflow-profile", str(REPO / "profiles/default"))
IN_WINDOW = re.compile(r"slot [AB] \d+/\d+ requests, [\d.]+ s into the window")


def stop_config(trial_s: float) -> dict:
    """The tiny config cut to one run: short/bf16/colocated."""
    cfg = tiny_config()
    del cfg["scenarios"]["mixed"]
    cfg["precisions"] = ["bf16"]
    cfg["layouts"] = ["colocated"]
    del cfg["scenarios"]["short"]["sweep"]  # a sweep needs the alone layouts
    cfg["scenarios"]["short"]["trial_s"] = trial_s
    return cfg


def workers_under(path: Path) -> list[psutil.Process]:
    """Worker processes of runs under ``path``: their spec's absolute path is in the command."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "dualbench.measure.worker" in cmdline and str(path) in cmdline:
            found.append(proc)
    return found


def computing(procs: list[psutil.Process]) -> list[int]:
    """The pids of ``procs`` still running; a zombie computes nothing."""
    pids = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
    return pids


def survivors_after(procs: list[psutil.Process], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while computing(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return computing(procs)


def wait_for_window(log: Path, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until ``log`` shows a finished call of the measuring window."""
    deadline = time.monotonic() + timeout_s
    while not IN_WINDOW.search(log.read_text()):
        assert proc.poll() is None, f"exited before the window:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no window in {timeout_s} s:\n{log.read_text()}"
        time.sleep(0.2)


def kill_leftovers(path: Path, proc: subprocess.Popen) -> None:
    """``proc`` (leader of its own process group) with its group, and any worker under path."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for worker in workers_under(path):
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


@dataclass
class CtrlC:
    output: str
    workers: int
    survivors: list[int]
    exit_code: int
    records_left: list[Path]
    rerun: subprocess.CompletedProcess
    records_after_rerun: list[Path]


@pytest.fixture(scope="module", params=["terminal", "pid"])
def ctrl_c(pipeline, tmp_path_factory, request) -> CtrlC:
    """`snakemake report` stopped by SIGINT in a run's window, then the same command again.
    "terminal": Ctrl-C, SIGINT to the foreground process group (Snakemake and its jobs);
    "pid": `kill -INT` of Snakemake alone, which Snakemake itself never passes on to its jobs."""
    workdir = make_workdir(
        tmp_path_factory.mktemp("stops") / f"ctrl_c_{request.param}", stop_config(LONG_S)
    )
    shutil.copytree(pipeline / "results/models", workdir / "results/models")
    log = workdir / "snakemake.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2", *PROFILE, "report"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a terminal's job has
        )
    try:
        wait_for_window(log, proc)
        workers = workers_under(workdir)
        # Ctrl-C: the terminal sends SIGINT to its foreground process group, Snakemake and its
        # script jobs; the workers have sessions of their own.
        if request.param == "terminal":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        survivors = survivors_after(workers, GONE_WITHIN_S)
        exit_code = proc.wait(timeout=60)
    finally:
        kill_leftovers(workdir, proc)
    records_left = list((workdir / "results/sessions").rglob("run.json"))
    # A short window this time: the edit changes the run's params too, which must not matter.
    write_config(workdir, stop_config(1.0))
    rerun = snakemake(workdir, *PROFILE, "report", check=False)
    return CtrlC(
        output=log.read_text(),
        workers=len(workers),
        survivors=survivors,
        exit_code=exit_code,
        records_left=records_left,
        rerun=rerun,
        records_after_rerun=list((workdir / "results/sessions").rglob("run.json")),
    )


def test_ctrl_c_of_snakemake_kills_every_worker_within_5_s(ctrl_c):
    assert ctrl_c.workers == 2
    assert ctrl_c.survivors == []


def test_ctrl_c_fails_the_run_and_leaves_no_record(ctrl_c):
    assert ctrl_c.exit_code != 0
    assert "interrupted by SIGINT; workers killed, no record written" in ctrl_c.output
    assert ctrl_c.records_left == []


def test_the_same_command_after_ctrl_c_completes_every_run(ctrl_c):
    assert ctrl_c.rerun.returncode == 0, ctrl_c.rerun.stdout[-6000:]
    assert len(ctrl_c.records_after_rerun) == 1
    for path in ctrl_c.records_after_rerun:
        assert json.loads(path.read_text())["status"] == "ok", path


def test_progress_lines_show_in_snakemake_output(ctrl_c):
    out = ctrl_c.rerun.stdout
    run = "dualbench run short/bf16/colocated: "
    for slot in "AB":
        assert re.search(
            rf"dualbench session short/bf16: slot {slot} loaded in [\d.]+ s, "
            r"warmed up in [\d.]+ s",
            out,
        )
        assert re.search(
            rf"{run}slot {slot} \d+/2 requests, [\d.]+ s into the window, "
            r"(~\d+ s to go|<1 s to go|criteria met)",
            out,
        )
    assert "every slot ready, the window starts" in out
    assert re.search(rf"{run}every slot met its criteria [\d.]+ s into the window", out)


RUNNER = textwrap.dedent(
    """
    import json, sys
    from dualbench.measure.lifetime import exit_on_signals
    from dualbench.measure.runner import run_to_file
    spec, models = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    with exit_on_signals():
        run_to_file(spec, models, sys.argv[3])
    """
)


@contextlib.contextmanager
def measuring_runner(pipeline, out_dir: Path):
    """A runner started as the run rule's script starts it; yields it, its workers and its log
    once the workers measure."""
    spec = config.run_spec(config.validate(stop_config(LONG_S)), "short", "bf16", "colocated")
    models = {s: str(pipeline / f"results/models/{s}/bf16") for s in "AB"}
    out_dir.mkdir()
    log = out_dir / "runner.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, json.dumps(spec), json.dumps(models)]
            + [str(out_dir / "run.json")],
            stderr=err,
            start_new_session=True,
        )
    try:
        wait_for_window(log, proc)
        yield proc, workers_under(out_dir), log
    finally:
        kill_leftovers(out_dir, proc)


def test_sigkill_of_the_runner_takes_its_workers_along(pipeline, tmp_path):
    with measuring_runner(pipeline, tmp_path / "run") as (runner, workers, _):
        assert len(workers) == 2
        runner.send_signal(signal.SIGKILL)
        assert survivors_after(workers, GONE_WITHIN_S) == []
    assert not (tmp_path / "run/run.json").exists()


def test_sigterm_of_the_runner_kills_its_workers_and_writes_no_record(pipeline, tmp_path):
    with measuring_runner(pipeline, tmp_path / "run") as (runner, workers, log):
        assert len(workers) == 2
        runner.send_signal(signal.SIGTERM)
        assert survivors_after(workers, GONE_WITHIN_S) == []
        assert runner.wait(timeout=30) == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in log.read_text()
    # No run.json, no telemetry.csv, no temporary file: only what the run's start made.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["runner.log", "workers"]
