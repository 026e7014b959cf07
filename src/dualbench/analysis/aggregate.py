"""Aggregation: run.json files in, the files of results/metrics/ out (``METRICS_FILES``; their
schemas: dualbench.analysis.columns).

Each record is reduced once (dualbench.analysis.runs) into its per-run rows; the tables across
runs (scaling, interference, precisions, int4, and over blocks: answers, blocks) are built
from those rows and records; environment.json gathers the software, host, devices, models and
every run's spec.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from dualbench.analysis.answers import answers_table
from dualbench.analysis.blocks import blocks_table
from dualbench.analysis.calibration import (
    calibration_rows,
    peaks_by_slot,
    read_calibrations,
    run_peaks,
)
from dualbench.analysis.columns import (
    CALIBRATION_COLUMNS,
    ENERGY_COLUMNS,
    METRICS_FILES,
    REQUEST_COLUMNS,
    RUN_COLUMNS,
    SESSION_COLUMNS,
    TELEMETRY_COLUMNS,
    run_id,
)
from dualbench.analysis.contention import (
    contention_row,
    contention_table,
    curve_table,
    fits_table,
)
from dualbench.analysis.int4 import int4_table, precision_table
from dualbench.analysis.runs import record_rows
from dualbench.analysis.scaling import interference_table, scaling_table
from dualbench.config.validation import schema
from dualbench.telemetry.sampler import read_csv as read_telemetry_csv


def aggregate(
    run_paths: list[Path],
    out_dir: Path,
    model_sources: dict[str, str],
    analysis: dict | None = None,
    calibration_paths=(),
    sweep_paths=(),
    sessions=(),
) -> None:
    """Read run.json files (each with its telemetry.csv, where recorded) and write every file
    of ``METRICS_FILES`` under ``out_dir``. ``analysis``: the config's analysis section
    (confidence, equivalence_margin, drift_tolerance); ``calibration_paths``: the calibrate
    rule's records (the roofline's peaks); ``sweep_paths``: the run.json of every contention
    sweep point (contention tables only, never runs.csv: a sweep point is not a layout);
    ``sessions``: each measuring session's summary (session.json), for sessions.csv."""
    # Unset keys take the config schema's defaults, so a direct call judges like the pipeline.
    defaults = schema()["properties"]["analysis"]["properties"]
    settings = {key: spec["default"] for key, spec in defaults.items()} | (analysis or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    calibrations = read_calibrations(calibration_paths)
    peaks = peaks_by_slot(calibrations)
    run_rows, request_rows, records, energy_rows, samples = [], [], [], [], []
    for path in run_paths:
        record = json.loads(Path(path).read_text())
        records.append(record)
        rows = record_rows(record, model_sources, _telemetry_rows(Path(path), record), peaks)
        run_rows += rows.runs
        request_rows += rows.requests
        energy_rows.append(rows.energy)
        samples += rows.telemetry

    def write(table: str, frame: pd.DataFrame) -> None:
        frame.to_csv(out_dir / METRICS_FILES[table], index=False)

    runs = pd.DataFrame(run_rows).reindex(columns=RUN_COLUMNS)
    write("runs", runs)
    write("requests", pd.DataFrame(request_rows, columns=REQUEST_COLUMNS))
    write("scaling", scaling_table(runs))
    write("interference", interference_table(runs))
    write("precisions", precision_table(records, model_sources))
    write("int4", int4_table(runs))
    energy = pd.DataFrame(energy_rows, columns=ENERGY_COLUMNS)
    write("energy", energy)
    telemetry = pd.DataFrame(samples, columns=TELEMETRY_COLUMNS)
    write("telemetry", telemetry)
    confidence, margin = settings["confidence"], settings["equivalence_margin"]
    write("answers", answers_table(runs, energy, confidence, margin))
    write("blocks", blocks_table(runs, telemetry, settings["drift_tolerance"]))
    write("sessions", pd.DataFrame([session_row(s) for s in sessions], columns=SESSION_COLUMNS))
    write("calibration", pd.DataFrame(calibration_rows(calibrations), columns=CALIBRATION_COLUMNS))
    contention = contention_table(_sweep_rows(sweep_paths, model_sources, peaks))
    write("contention", contention)
    write("contention_curve", curve_table(contention, confidence))
    write("contention_fits", fits_table(contention, confidence))
    environment = json.dumps(_environment(records, model_sources), indent=2, sort_keys=True)
    (out_dir / METRICS_FILES["environment"]).write_text(environment)


def session_row(summary: dict) -> dict:
    """sessions.csv's row of one session.json: its worst answer is the widest interval (one
    without an interval counts as infinitely wide)."""
    widths = {k: (math.inf if w is None else w) for k, w in summary["half_widths"].items()}
    worst = max(widths, key=widths.get, default="")
    return {
        **{k: summary.get(k) for k in SESSION_COLUMNS},
        "worst_half_width": widths.get(worst, math.nan),
        "worst_answer": worst,
    }


def _sweep_rows(sweep_paths, model_sources: dict[str, str], peaks) -> list[dict]:
    """contention.csv's rows: each sweep point's record reduced like a run's (its telemetry
    is not needed), its roofline filled, then one row for the victim."""
    rows = []
    for path in sweep_paths:
        record = json.loads(Path(path).read_text())
        run_rows = record_rows(record, model_sources, [], peaks).runs if record["slots"] else []
        victim = record["spec"]["sweep"]["victim"]
        rows.append(
            contention_row(record, run_rows, run_peaks(peaks, victim, record["spec"]["precision"]))
        )
    return rows


def _telemetry_rows(run_path: Path, record: dict) -> list[dict]:
    """The rows of the telemetry.csv next to a run.json; none when it has none."""
    path = run_path.parent / (record.get("telemetry") or {}).get("file", "-")
    return read_telemetry_csv(path) if path.is_file() else []


def _environment(records: list[dict], model_sources: dict[str, str]) -> dict:
    """environment.json: the first record's software and host, every slot device's facts as
    its worker saw them, the models and every run's spec by run id."""
    devices = {}
    for record in records:
        for slot in record["slots"].values():
            if slot["result"] and slot["result"].get("device_info"):
                devices[slot["device"]] = slot["result"]["device_info"]
    return {
        **(records[0]["environment"] if records else {}),
        "devices": devices,
        "models": model_sources,
        "config": {run_id(r["spec"]): r["spec"] for r in records},
    }
