"""What the cluster tests share: the small config they submit, the rules that run where
Snakemake runs, and waiting for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import tiny_config

LOCAL_RULES = {"all", "aggregate", "report"}
MEASURING_RULES = {"session", "calibrate"}


def cluster_config(sweep: bool = True) -> dict:
    """The tiny config cut to one scenario and precision: every kind of job (fetch, convert,
    calibrate, block and, with ``sweep``, a sweep) at the least cost."""
    cfg = tiny_config()
    del cfg["scenarios"]["mixed"]
    cfg["precisions"] = ["bf16"]
    if not sweep:
        del cfg["scenarios"]["short"]["sweep"]
    return cfg


def wait_for(predicate, timeout_s: float, what: str):
    """``predicate()``'s first true value, polled twice a second."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {timeout_s} s")


def profile_snakemake(
    workdir: Path, env: dict, options: list[str], *args: str, background: bool = False
):
    """Snakemake in ``workdir`` with its filled-in profile (``workdir/profile``) as the workflow
    profile, as the README says, plus the test's ``options``; stdout and stderr merged. With
    ``background``, the running process (in its own session, so that a test can signal the
    whole group)."""
    command = [
        sys.executable, "-m", "snakemake", "--workflow-profile", str(workdir / "profile"),
        *options, *args,
    ]  # fmt: skip
    kwargs = dict(
        cwd=workdir,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if background:
        return subprocess.Popen(command, start_new_session=True, **kwargs)
    return subprocess.run(command, timeout=900, **kwargs)


def why_it_failed(done, workdir: Path) -> str:
    """What a failed cluster run's assertion shows: Snakemake's error blocks (the start of its
    output is cut by the usual tail) and the end of every job log that names an error."""
    lines = done.stdout.splitlines()
    parts = [
        "\n".join(lines[i : i + 12]) for i, line in enumerate(lines) if line.startswith("Error in")
    ]
    for log in sorted(p for p in workdir.rglob("*.log") if p.is_file()):
        text = log.read_text(errors="replace")
        if "rror" in text:
            parts.append(f"--- {log.relative_to(workdir)}\n{text[-1500:]}")
    return "\n".join(parts) + "\n--- the end of Snakemake's output\n" + done.stdout[-2000:]
