"""scaling.csv and interference.csv: what running models together does to throughput and
latency, per scenario, precision and block (DESIGN §6), for any number of models.

From the runs.csv rows of one block, for every group layout L of k models in it:
- the scaling curve (scaling.csv, one row per L): the members' throughput alone summed
  (``v1_sum``) and averaged (``v1_mean``), their total in L (``v_total``, the curve's point
  at k), the growth per added model ``(v_total / v1_mean - 1) / (k - 1)`` and the scaling
  efficiency ``v_total / v1_sum``;
- the interference matrix (interference.csv, one row per member of L, the victim): its
  throughput alone / in L, and its TTFT, TPOT and E2E p50 in L / alone.

Alone and group runs of the same block ran back to back, so these are the paired per-block
figures the answers' intervals are computed over (dualbench.analysis.answers). Model names
come from the data (dualbench.analysis.layouts), layouts are read with the grammar of
dualbench.config.vocabulary. A figure is computed from whatever runs exist (NaN where one is
missing or failed); ``valid`` says whether every run it needs is valid.
"""

from __future__ import annotations

import math

import pandas as pd

from dualbench.analysis.columns import INTERFERENCE_COLUMNS, SCALING_COLUMNS
from dualbench.analysis.layouts import data_models, group_layouts, members, sum_slot
from dualbench.config.vocabulary import alone_layout, layout_schedule

BLOCK_KEYS = ["scenario", "precision", "repeat"]
# The latency slowdowns: in-layout p50 / alone p50 (above 1: slower beside the others).
LATENCY_SLOWDOWNS = ("ttft_ms_p50", "tpot_ms_p50", "e2e_ms_p50")


def scaling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The scaling curve: one row per scenario, precision, block and group layout."""
    names = data_models(runs)
    rows = []
    for key, block in _blocks(runs):
        for layout in group_layouts(block):
            rows.append({**key, **_scaling(block, layout, members(layout, names))})
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def interference_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The interference matrix: one row per scenario, precision, block, group layout and
    member (the victim), its slowdowns against its own alone run of the block."""
    names = data_models(runs)
    rows = []
    for key, block in _blocks(runs):
        picked = _picker(block)
        for layout in group_layouts(block):
            group = members(layout, names)
            for victim in group:
                alone, inside = picked(alone_layout(victim), victim), picked(layout, victim)
                rows.append(
                    {
                        **key,
                        "layout": layout,
                        "schedule": layout_schedule(layout),
                        "victim": victim,
                        "neighbours": sum_slot([m for m in group if m != victim]),
                        "slowdown_throughput": _ratio(alone, inside, "throughput_tok_s"),
                        **{
                            f"slowdown_{c.removesuffix('_ms_p50')}_p50": _ratio(inside, alone, c)
                            for c in LATENCY_SLOWDOWNS
                        },
                        "valid": _all_valid([alone, inside]),
                    }
                )
    return pd.DataFrame(rows, columns=INTERFERENCE_COLUMNS)


def _blocks(runs: pd.DataFrame):
    """(block key columns, its rows) per scenario, precision and block, in the data's order."""
    for values, block in runs.groupby(BLOCK_KEYS, sort=False):
        yield dict(zip(BLOCK_KEYS, values, strict=True)), block


def _picker(block: pd.DataFrame):
    """(layout, slot) -> that run's row of the block, None where it has none."""
    rows = {(r["layout"], r["slot"]): r for r in block.to_dict("records")}
    return lambda layout, slot: rows.get((layout, slot))


def _scaling(block: pd.DataFrame, layout: str, group: tuple[str, ...]) -> dict:
    """The scaling columns of one group layout of one block."""
    picked = _picker(block)
    alone = {m: picked(alone_layout(m), m) for m in group}
    inside = {m: picked(layout, m) for m in group}
    needed = [*alone.values(), *inside.values()]
    k = len(group)
    v1_sum = sum(_number(r, "throughput_tok_s") for r in alone.values())
    v1_mean = v1_sum / k
    v_total = sum(_number(r, "throughput_tok_s") for r in inside.values())
    missing = [alone_layout(m) for m, r in alone.items() if r is None]
    missing += [layout] if any(r is None for r in inside.values()) else []
    notes = []
    if missing:
        notes.append("missing runs: " + ", ".join(sorted(missing)))
    elif not _all_valid(needed):
        notes.append("depends on an invalid or failed run")
    return {
        "layout": layout,
        "schedule": layout_schedule(layout),
        "models": sum_slot(group),
        "k": k,
        "v1_sum": v1_sum,
        "v1_mean": v1_mean,
        "v_total": v_total,
        # (v_total / v1_mean - 1) / (k - 1), spelled so that k = 2 gives the two-model
        # growth (V2 - V1) / V1 to the last bit.
        "growth_per_model": (v_total - v1_mean) / v1_mean / (k - 1) if v1_mean else math.nan,
        "scaling_efficiency": v_total / v1_sum if v1_sum else math.nan,
        "valid": _all_valid(needed),
        "note": "; ".join(notes),
    }


def _number(row: dict | None, column: str) -> float:
    """A run's figure; NaN where the run is missing or has none."""
    if row is None:
        return math.nan
    value = pd.to_numeric(row.get(column), errors="coerce")
    return math.nan if value is None or pd.isna(value) else float(value)


def _ratio(num: dict | None, den: dict | None, column: str) -> float:
    a, b = _number(num, column), _number(den, column)
    return a / b if b else math.nan


def _all_valid(rows) -> bool:
    return all(r is not None and _truthy(r.get("valid")) for r in rows)


def _truthy(value) -> bool:
    """runs.csv's ``valid`` as a frame holds it, or as read back from the CSV."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) and not (isinstance(value, float) and math.isnan(value))
