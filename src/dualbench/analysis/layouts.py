"""The models and layouts of the measured data, read through the layout grammar of
dualbench.config.vocabulary: the analysis takes model names from the runs it is given (the
sorted unique ``slot`` values of runs.csv), never from a constant, so any number of models
works and a table holds exactly the models that ran.

- ``data_models``: the model names of a runs frame;
- ``members``: the models a layout runs;
- ``group_layouts`` / ``layout_key``: the layouts of several models in the data, in the order
  every table and answer lists them (alone first, then the groups by kind, size and name);
- ``sum_slot``: the name of a group's summed row ("A+B"), which no model name can take.
"""

from __future__ import annotations

import pandas as pd

from dualbench.config.vocabulary import (
    GROUP_KINDS,
    SUBSET_SEPARATOR,
    is_group,
    layout_kind,
    layout_slots,
)

# Group kinds in the order tables list them: free co-location before its schedules.
_KIND_ORDER = {"alone": 0, **{kind: i + 1 for i, kind in enumerate(GROUP_KINDS)}}


def data_models(runs: pd.DataFrame) -> tuple[str, ...]:
    """The model names of a runs.csv frame: its sorted unique ``slot`` values."""
    if runs is None or runs.empty or "slot" not in runs:
        return ()
    return tuple(sorted(str(s) for s in runs["slot"].dropna().unique()))


def members(layout: str, names) -> tuple[str, ...]:
    """The models ``layout`` runs (sorted), ``names`` being every model of the data."""
    return layout_slots(layout, names)


def layout_key(layout: str) -> tuple:
    """Sort key: every alone layout (by model), then the group layouts by kind (co-located,
    lockstep, single-thread), number of models and name."""
    _, subset, models = layout.partition(":")
    # A bare group (every model) sorts after its subsets: it is the curve's last point.
    size = len(models.split(SUBSET_SEPARATOR)) if subset else float("inf")
    return (_KIND_ORDER[layout_kind(layout)], size, layout)


def data_layouts(runs: pd.DataFrame) -> list[str]:
    """Every layout of a runs frame, in ``layout_key`` order."""
    if runs is None or runs.empty:
        return []
    return sorted({str(x) for x in runs["layout"].dropna().unique()}, key=layout_key)


def group_layouts(runs: pd.DataFrame) -> list[str]:
    """The layouts of a runs frame that run several models at once, in ``layout_key`` order."""
    return [layout for layout in data_layouts(runs) if is_group(layout)]


def sum_slot(group: tuple[str, ...] | list[str]) -> str:
    """The slot name of a group layout's summed row: its models joined by "+" (a model name
    holds letters and digits only, so it never collides with one)."""
    return SUBSET_SEPARATOR.join(sorted(group))
