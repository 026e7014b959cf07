"""One block of a contention sweep: the victim's scenario run once per point, the neighbour's
open-loop rate stepping through fractions of its solo capacity, in the block's seeded order
(dualbench.config.params.sweep_spec), each point writing its own run record.

The neighbour's capacity is measured, not configured: its requests per second in its alone run
of the same block (the sweep job reads it before it starts). Without a capacity (that run
failed or was invalid) no rate can be set: the loaded points are then recorded as not run,
with the reason, and the victim-alone point is still measured. As in a block, a failed run is
recorded and the sweep goes on; a stop from outside ends it at once. As a block, a sweep first
checks that no foreign process uses its slots (dualbench.measure.exclusivity): under
``run.exclusivity: fail`` a busy sweep measures nothing and ends with one line.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from dualbench.measure import exclusivity
from dualbench.measure.progress import block_line
from dualbench.measure.runner import run_to_file, write_atomically


def loaded_spec(spec: dict, capacity_rps: float) -> dict:
    """``spec`` (a sweep point's run spec) with the neighbour's rate set: fraction x capacity.
    The victim-alone point (fraction 0) is returned as it is."""
    spec = copy.deepcopy(spec)
    sweep = spec["sweep"]
    sweep["capacity_rps"] = capacity_rps
    sweep["offered_rps"] = sweep["fraction"] * capacity_rps
    if sweep["fraction"] > 0:
        spec["slots"][sweep["neighbour"]]["arrival"]["rate_rps"] = sweep["offered_rps"]
    return spec


def not_run_record(spec: dict, reason: str, finding: dict | None = None) -> dict:
    """The record of a point that could not run: status error, no slots measured;
    ``finding``: the sweep's exclusivity finding."""
    record = {"spec": spec, "status": "error", "error": reason, "slots": {}, "warnings": []}
    return {**record, "exclusivity": finding or exclusivity.check("", {}, None)}


def run_sweep(
    sweep: dict,
    capacity_rps: float | None,
    capacity_note: str,
    model_dirs: dict[str, str],
    out_paths: dict[str, Path],
    work_dir,
    policy: dict | None = None,
) -> dict[str, dict]:
    """Run every point of ``sweep`` (config.sweep_spec) and return {point: run record}.
    ``capacity_rps``: the neighbour's solo capacity, None when it has none (``capacity_note``
    says why); ``model_dirs``: the converted model of each slot; ``out_paths``: each point's
    run.json; ``work_dir``: the workers' files, one folder per point; ``policy``: the
    exclusivity policy (dualbench.config.exclusivity_policy; None: no check)."""
    finding = exclusivity.check_runs(list(sweep["runs"].values()), policy)
    records = {}
    for position, point in enumerate(sweep["order"], start=1):
        block_line(sweep, position, point)
        spec = sweep["runs"][point]
        out = Path(out_paths[point])
        out.parent.mkdir(parents=True, exist_ok=True)
        if capacity_rps is None and spec["sweep"]["fraction"] > 0:
            record = not_run_record(
                spec,
                f"not run: no solo capacity of {spec['sweep']['neighbour']} ({capacity_note})",
                finding,
            )
            write_atomically(out, json.dumps(record))
            records[point] = record
            continue
        spec = loaded_spec(spec, capacity_rps if capacity_rps is not None else float("nan"))
        models = {slot: model_dirs[slot] for slot in spec["slots"]}
        records[point] = run_to_file(spec, models, out, Path(work_dir) / point, finding)
    return records
