"""The models and layouts of the data as the report names them.

- the model names: the sorted unique ``slot`` values of runs.csv (``slot_names``), never a
  constant, so any number of models works;
- the layout grammar of dualbench.config.vocabulary read tolerantly (``kind_of``,
  ``is_group_layout``, ``members``: a layout the grammar does not spell reads as unknown
  rather than failing the report), the group layouts' rows of a table (``group_rows``) and
  the layouts in the order tables list them (``sort_layouts``, ``group_layouts_of``: analysis.
  layouts.layout_key);
- the report's names: of a kind (``kind_label``), of a group layout as a whole
  (``group_label``: "A+B co-located") and of a slot in a layout (``run_label``: "A alone",
  "B co-located", "A co-located (A+B)", "A lockstep").
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from dualbench.analysis.layouts import data_models, layout_key
from dualbench.config.vocabulary import (
    ALONE_PREFIX,
    COLOCATED,
    LOCKSTEP,
    SINGLE_THREAD,
    SUBSET_SEPARATOR,
    layout_kind,
    layout_slots,
)
from dualbench.errors import ConfigError

# How the report names each kind of group layout.
KIND_LABELS = {COLOCATED: "co-located", LOCKSTEP: "lockstep", SINGLE_THREAD: "single-thread"}


def slot_names(runs: pd.DataFrame) -> list[str]:
    """The model (slot) names of runs.csv: its sorted unique non-empty ``slot`` values."""
    return [s for s in data_models(runs) if s]


def kind_of(layout: str) -> str:
    """vocabulary.layout_kind, "" for a layout the grammar does not spell (a table that
    predates it, an empty cell): the report shows what it is given rather than fail."""
    try:
        return layout_kind(layout)
    except ConfigError:
        return ""


def is_group_layout(layout: str) -> bool:
    """Whether ``layout`` runs several models at once (False for an unknown layout)."""
    return kind_of(layout) not in ("", "alone")


def group_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` whose ``layout`` runs several models at once."""
    return df[df["layout"].map(is_group_layout).astype(bool)]


def members(layout: str, names) -> tuple[str, ...]:
    """The models ``layout`` runs (vocabulary.layout_slots; ``names``: every model of the
    data); () for a layout the grammar does not spell or that names a model not in ``names``."""
    if not kind_of(layout):
        return ()
    try:
        return layout_slots(layout, names)
    except ConfigError:
        return ()


def sort_layouts(layouts: Iterable[str]) -> list[str]:
    """``layouts`` without repeats in the order tables list them (analysis.layouts.layout_key:
    alone by model, then groups by kind, size and name); unknown layouts last, by name."""
    known = sorted({lay for lay in layouts if kind_of(lay)}, key=layout_key)
    return known + sorted({lay for lay in layouts if not kind_of(lay)})


def group_layouts_of(layouts: Iterable[str], schedule: str | None = None) -> list[str]:
    """The group layouts among ``layouts`` in table order; ``schedule``: only the layouts of
    that kind (COLOCATED for the free ones)."""
    return [
        lay
        for lay in sort_layouts(layouts)
        if is_group_layout(lay) and (schedule is None or kind_of(lay) == schedule)
    ]


def kind_label(layout: str) -> str:
    """ "co-located", "lockstep", "single-thread" (the layout itself for an unknown one)."""
    return KIND_LABELS.get(kind_of(layout), layout)


def group_label(layout: str, names) -> str:
    """How the report names a group layout as a whole: its models and kind, "A+B co-located",
    "A+B+C lockstep" (so a subset and the full group read alike)."""
    found = members(layout, names)
    return f"{SUBSET_SEPARATOR.join(found)} {kind_label(layout)}" if found else layout


def run_label(layout: str, slot: str) -> str:
    """How the report names a slot in a layout: "A alone", "B co-located" (in the layout of
    every model), "A co-located (A+B)" (in a subset), "A lockstep", "A single-thread"."""
    if layout.startswith(ALONE_PREFIX):
        return f"{slot} alone"
    kind = kind_of(layout)
    if not kind:
        return f"{slot} {layout}".strip()
    _, _, subset = layout.partition(":")
    return f"{slot} {KIND_LABELS[kind]}" + (f" ({subset})" if subset else "")
