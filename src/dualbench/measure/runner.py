"""One run on its own: a session (dualbench.measure.session) of the run's processes that
serves this one trial, started cold and closed after it, with one record written whatever
happens.

The run spec's ``schedule`` says how the slots share the machine: absent (free), each worker
runs its own loop; ``lockstep``, the workers take their forward passes in turns round a ring of
pipes (dualbench.measure.lockstep); ``single_thread``, one worker process hosts every slot and
serves them in rounds (dualbench.measure.single_thread). The record has one result per slot
whatever the schedule.

Failures (a worker that crashes, runs out of memory or hangs) end in a record with ``status``
(ok | oom | error | timeout) and the message. A stop from outside (SIGINT, SIGTERM, SIGHUP)
abandons the run (dualbench.measure.lifetime): the workers are killed at once and no record is
written, so that nothing takes the run for finished. Progress goes to stderr.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dualbench.measure.session import Session
from dualbench.measure.session_plan import session_plan


def run(
    spec: dict,
    model_dirs: dict[str, str],
    work_dir: Path,
    telemetry_csv: Path | None = None,
    sources: list | None = None,
    exclusivity: dict | None = None,
) -> dict:
    """Run ``spec`` (from config.run_spec) and return the run record.

    ``work_dir`` receives worker specs, results and logs; ``telemetry_csv`` (default
    work_dir/telemetry.csv) the samples of dualbench.telemetry. ``sources`` replaces the
    backend's telemetry sources (tests use it to sample a stand-in npu-smi beside CPU workers).
    ``exclusivity``: the job's exclusivity finding, kept in the record (None: not checked, as
    policy off). Whatever ends the call, no worker outlives it.
    """
    work_dir = Path(work_dir)
    models = {name: model_dirs[name] for name in spec["slots"]}
    with Session(session_plan([spec]), models, work_dir, sources) as session:
        record = session.trial(
            spec, work_dir, Path(telemetry_csv or work_dir / "telemetry.csv"), exclusivity
        )
    record["session"] = session.describe()
    return record


def run_to_file(
    spec: dict, model_dirs: dict[str, str], out_path, work_dir=None, exclusivity=None
) -> dict:
    """``run`` with the record written to ``out_path``, whole or not at all: an existing
    run.json means a finished run to Snakemake and to every reader. The telemetry goes beside
    it; the workers' specs, logs and results to ``work_dir`` (the run rule's declared log
    directory; by default ``workers/`` beside ``out_path``). ``exclusivity``: as in ``run``."""
    out_path = Path(out_path)
    work_dir = Path(work_dir) if work_dir is not None else out_path.parent / "workers"
    record = run(
        spec, model_dirs, work_dir, out_path.parent / "telemetry.csv", exclusivity=exclusivity
    )
    write_atomically(out_path, json.dumps(record))
    return record


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds the old content or all of ``text``, never a part: a temporary file in the
    same directory (a rename is atomic within one file system only), synced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
