"""A trial's telemetry.csv, cut from the samples its session took for the whole session: the
session's idle baseline (sampled before any worker existed) and the trial's own span. A host
or device sample is labelled with the trial's slots that it sees (a device none of them uses
is left out), and a worker's CPU clock is kept only for the processes of the trial, so a
trial's file reads as a run's did when each run sampled alone."""

from __future__ import annotations

import csv
from pathlib import Path

from dualbench.telemetry.sampler import COLUMNS
from dualbench.telemetry.sources import ProcessCpuSource


def write_trial_telemetry(
    path: Path, sources: list, sampler, spec: dict, processes: list[str], spans, extra
) -> dict:
    """Write the trial's telemetry.csv (``spans``: the (start, end) perf_counter_ns ranges to
    keep; ``extra``: rows the workers took in-process) and return its record entry's file,
    sources and sample count."""
    trial_slots = set(spec["slots"])
    wanted = []
    for source in sources:
        if isinstance(source, ProcessCpuSource):
            keep = source.slots[0] in processes
            label = source.slots
        else:
            label = tuple(s for s in source.slots if s in trial_slots)
            keep = bool(label)
        if keep:
            wanted.append((source, "+".join(label)))
    labels = {(s.name, s.device, "+".join(s.slots)): label for s, label in wanted}
    rows = []
    for t_ns, slots, device, metric, value, name in list(sampler.rows):
        label = labels.get((name, device, slots))
        if label is not None and any(start <= t_ns <= end for start, end in spans):
            rows.append((t_ns, label, device, metric, value, name))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(sorted([*rows, *extra]))
    return {
        "file": Path(path).name,
        "sources": [{**s.describe(), "slots": label} for s, label in wanted],
        "samples": len(rows) + len(extra),
    }
