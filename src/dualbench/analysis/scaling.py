"""scaling.csv: what co-location does to throughput, per scenario, precision and block
(DESIGN §6).

From the runs.csv rows of one block: each slot's throughput alone (V1 per slot) and
co-located, the mean V1, the co-located total V2, growth, scaling efficiency and each slot's
slowdown. Alone and co-located runs of the same block ran back to back, so these are the
paired per-block figures the intervals are computed over (dualbench.analysis.answers). Slot
and layout names come from dualbench.config.vocabulary.
"""

from __future__ import annotations

import math

import pandas as pd

from dualbench.analysis.columns import SCALING_COLUMNS
from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout


def scaling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """V1/V2, growth, efficiency and slowdown per scenario, precision and block."""
    rows = []
    keys = ["scenario", "precision", "repeat"]
    for (scenario, precision, repeat), group in runs.groupby(keys, sort=False):
        rows.append(
            {"scenario": scenario, "precision": precision, "repeat": repeat, **_scaling(group)}
        )
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def _scaling(group: pd.DataFrame) -> dict:
    """The scaling columns of one scenario and precision's run rows."""

    def pick(layout, slot):
        sel = group[(group.layout == layout) & (group.slot == slot)]
        return sel.iloc[0] if len(sel) else None

    # (layout, slot) -> its run row: every slot alone, then every slot co-located.
    parts = {
        **{(alone_layout(s), s): pick(alone_layout(s), s) for s in SLOT_NAMES},
        **{(COLOCATED, s): pick(COLOCATED, s) for s in SLOT_NAMES},
    }
    missing = [key for key, row in parts.items() if row is None]
    tput = {k: (v["throughput_tok_s"] if v is not None else math.nan) for k, v in parts.items()}
    alone = [tput[(alone_layout(s), s)] for s in SLOT_NAMES]
    together = [tput[(COLOCATED, s)] for s in SLOT_NAMES]
    v1 = sum(alone) / len(alone)
    v2 = sum(together)
    valid = not missing and all(bool(v["valid"]) for v in parts.values())
    notes = []
    if missing:
        notes.append("missing runs: " + ", ".join(sorted({layout for layout, _ in missing})))
    if not missing and not valid:
        notes.append("depends on an invalid or failed run")
    return {
        **{f"v1_{s}": v for s, v in zip(SLOT_NAMES, alone, strict=True)},
        "v1": v1,
        "v2": v2,
        "growth": (v2 - v1) / v1 if v1 else math.nan,
        "scaling_efficiency": v2 / sum(alone) if sum(alone) else math.nan,
        **{
            f"slowdown_{s}": a / c if c else math.nan
            for s, a, c in zip(SLOT_NAMES, alone, together, strict=True)
        },
        "valid": valid,
        "note": "; ".join(notes),
    }
