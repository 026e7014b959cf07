"""One repeat block: every layout of a scenario and precision, run once each, back to back,
in the block's order (dualbench.config.blocks), each writing its own run record.

A run that fails is recorded as failed and the block goes on (the analysis drops that block
from the answers it cannot pair). A stop from outside ends the block at once: every record of
the block then goes, since Snakemake removes the outputs of an interrupted job, and the block
is measured again as a whole, so its runs stay side by side in time.

Before its first run, before any model loads, the block checks that no foreign process uses
the slots of its layouts (dualbench.measure.exclusivity, ``run.exclusivity``): under ``fail``
a busy block measures nothing, writes nothing and ends with one line.
"""

from __future__ import annotations

from pathlib import Path

from dualbench.measure import exclusivity
from dualbench.measure.progress import block_line
from dualbench.measure.runner import run_to_file


def run_block(
    block: dict,
    model_dirs: dict[str, str],
    out_paths: dict[str, str],
    work_dir,
    policy: dict | None = None,
) -> dict[str, dict]:
    """Run ``block`` (config.block_spec) and return {layout: run record}. ``model_dirs``: the
    converted model of each slot; ``out_paths``: run.json of each layout; ``work_dir``: the
    workers' files, one folder per layout; ``policy``: the exclusivity policy
    (dualbench.config.exclusivity_policy; None: no check)."""
    finding = exclusivity.check_runs(list(block["runs"].values()), policy)
    records = {}
    for position, layout in enumerate(block["order"], start=1):
        block_line(block, position, layout)
        spec = block["runs"][layout]
        models = {slot: model_dirs[slot] for slot in spec["slots"]}
        records[layout] = run_to_file(
            spec, models, Path(out_paths[layout]), Path(work_dir) / layout, finding
        )
    return records
