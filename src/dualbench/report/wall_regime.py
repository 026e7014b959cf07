"""Which roof a scenario's runs sit under, in words: the regime half of the report's "Where is
the wall" sentences (dualbench.report.wall) and of the verdicts' limit (dualbench.report.
verdicts), from runs.csv's roofline columns (dualbench.analysis.bandwidth). It arranges and
formats; the regimes and utilisations are runs.csv's.

- ``alone_regime``: the most common ``regime`` of the valid alone runs (layouts ``alone_*``,
  every slot and block; a tie goes to the first of ``REGIMES``), with the median over the runs
  in it of their MBU and MFU, each of the phase that named the run's regime (runs.csv's
  ``regime_phase``), as shares of the calibrated peaks (runs.csv's MBU and MFU already are);
- ``regime_text``: that regime in words — "bandwidth-bound, 75% of measured peak bandwidth
  (MBU)", "compute-bound, 80% of measured peak FLOP/s (MFU)", or, below both roofs, both
  shares with the nearer roof first: "below both roofs (26% of compute, 2.0% of bandwidth)";
- ``below_roof_note``: where no measured slot of a scenario × precision (its valid runs with a
  regime, any layout) is bandwidth-bound in either phase, a line saying so with the range of
  their MBU (decode's; prefill's where a slot has no decode step): a contention curve that
  stays flat there says nothing about a model that is bandwidth-bound.

Metrics written before ``below-roofs`` existed call the same runs ``overhead-bound``: the rule
that wrote it was the same (MBU and MFU both under the bound fraction, nothing measured about
overhead), so it is read as ``below-roofs`` (``LEGACY_REGIMES``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from dualbench.analysis.roofline import BANDWIDTH_BOUND, BELOW_ROOFS, COMPUTE_BOUND, REGIMES
from dualbench.report.format import fmt_pct
from dualbench.report.wall_figures import median

Key = tuple[str, str]
# How a sentence or a limit names a regime where its runs.csv value is not plain words.
REGIME_WORDS = {BELOW_ROOFS: "below both roofs"}
# runs.csv values of older metrics, read as what the same rule is called now.
LEGACY_REGIMES = {"overhead-bound": BELOW_ROOFS}
REGIME_COLUMNS = ("regime", "decode_regime", "prefill_regime")


def key_rows(runs: pd.DataFrame, key: Key) -> pd.DataFrame:
    """The valid runs.csv rows of ``key`` (scenario, precision)."""
    sel = (runs["scenario"] == key[0]) & (runs["precision"] == key[1])
    return runs[sel & runs["valid"]]


def _measured(runs: pd.DataFrame, key: Key) -> pd.DataFrame:
    """``key``'s valid rows with a regime, older metrics' regime names read as today's."""
    rows = key_rows(runs, key).replace({c: LEGACY_REGIMES for c in REGIME_COLUMNS})
    return rows[rows["regime"].isin(REGIMES)]


def regime_words(regime: str) -> str:
    """A runs.csv regime as a sentence names it ("below-roofs" → "below both roofs")."""
    return REGIME_WORDS.get(regime, regime)


def alone_regime(runs: pd.DataFrame, key: Key) -> dict[str, Any] | None:
    """The regime of ``key``'s valid alone runs (most common; see the module docstring), the
    median MBU and MFU of the runs in it, each of the phase that named its regime (runs.csv's
    ``regime_phase``: decode mbu / decode_mfu, prefill prefill_mbu / mfu), and how many runs
    that is; None without any."""
    rows = _measured(runs, key)
    rows = rows[rows["layout"].str.startswith("alone_")]
    if rows.empty:
        return None
    counts = Counter(rows["regime"])
    regime = max(REGIMES, key=lambda r: (counts[r], -REGIMES.index(r)))
    mode = rows[rows["regime"] == regime].to_dict("records")
    decode = [r.get("regime_phase") != "prefill" for r in mode]
    mbu = [r["mbu" if d else "prefill_mbu"] for r, d in zip(mode, decode, strict=True)]
    mfu = [r["decode_mfu" if d else "mfu"] for r, d in zip(mode, decode, strict=True)]
    return {"regime": regime, "mbu": median(mbu), "mfu": median(mfu), "n": len(mode)}


def regime_text(found: dict[str, Any] | None) -> str:
    """``alone_regime``'s result in words (the module docstring)."""
    if found is None:
        return "regime unknown (no valid alone run with a roofline regime in runs.csv)"
    mbu, mfu = fmt_pct(found["mbu"]), fmt_pct(found["mfu"])
    if found["regime"] == BANDWIDTH_BOUND:
        return f"bandwidth-bound, {mbu} of measured peak bandwidth (MBU)"
    if found["regime"] == COMPUTE_BOUND:
        return f"compute-bound, {mfu} of measured peak FLOP/s (MFU)"
    # Below both roofs: both shares, as neither resource limits the run; the nearer roof first.
    shares = [f"{mbu} of bandwidth", f"{mfu} of compute"]
    if found["mfu"] > found["mbu"]:
        shares.reverse()
    return f"{regime_words(found['regime'])} ({', '.join(shares)})"


def below_roof_note(runs: pd.DataFrame, key: Key) -> str:
    """The line for a scenario × precision whose measured slots are all below the bandwidth
    roof (the module docstring), "" where one is bandwidth-bound or none is measured."""
    rows = _measured(runs, key)
    if rows.empty or (rows[list(REGIME_COLUMNS)] == BANDWIDTH_BOUND).any(axis=None):
        return ""
    decode, prefill = rows["mbu"].to_numpy(float), rows["prefill_mbu"].to_numpy(float)
    mbu = np.where(np.isfinite(decode), decode, prefill)
    mbu = mbu[np.isfinite(mbu)]
    if not mbu.size:
        return ""
    low, high = fmt_pct(mbu.min()), fmt_pct(mbu.max())
    span = high if low == high else f"{low.removesuffix('%')}–{high}"
    return (
        f"This scenario's models are below the bandwidth roof (MBU {span}), so a flat "
        "contention curve here does not mean “no contention” on a bandwidth-bound model."
    )
