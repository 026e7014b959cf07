"""calibration.csv: the calibrate rule's records (dualbench.measure.calibration), one row per
slot and compute dtype, and the peaks the roofline of a run divides by.

A run's peaks are those of its slot in the compute dtype of its precision (int4 computes in
bf16): the copy bandwidth of the slot alone, the contended copy bandwidth (every slot copying
at once) and the matmul throughput.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dualbench.analysis.columns import CALIBRATION_COLUMNS
from dualbench.config.vocabulary import PRECISION_DTYPES


@dataclass(frozen=True)
class Peaks:
    """One slot's calibrated ceilings in one dtype (bytes/s, FLOP/s); NaN where unmeasured."""

    bw_bytes_s: float = math.nan  # copy bandwidth of the slot alone
    contended_bw_bytes_s: float = math.nan  # the slot's copy bandwidth while every slot copies
    contended_total_bytes_s: float = math.nan  # all slots' together, while all copy
    flop_s: float = math.nan  # square matmul in the dtype


NO_PEAKS = Peaks()


def read_calibrations(paths) -> list[dict]:
    """The calibration records in ``paths`` (JSON files)."""
    return [json.loads(Path(p).read_text()) for p in paths]


def calibration_rows(records: list[dict]) -> list[dict]:
    """calibration.csv's rows: each record's ``CALIBRATION_COLUMNS``, in slot, dtype order."""
    rows = [{c: record.get(c) for c in CALIBRATION_COLUMNS} for record in records]
    return sorted(rows, key=lambda r: (str(r["slot"]), str(r["dtype"])))


def peaks_by_slot(records: list[dict]) -> dict[tuple[str, str], Peaks]:
    """(slot, dtype) -> Peaks."""
    return {
        (r["slot"], r["dtype"]): Peaks(
            as_number(r.get("copy_alone_bytes_s")),
            as_number(r.get("copy_contended_bytes_s")),
            as_number(r.get("copy_contended_total_bytes_s")),
            as_number(r.get("matmul_flop_s")),
        )
        for r in records
    }


def run_peaks(peaks: dict[tuple[str, str], Peaks], slot: str, precision: str) -> Peaks:
    """The peaks of ``slot`` in the compute dtype of ``precision`` (NO_PEAKS if uncalibrated)."""
    return peaks.get((slot, PRECISION_DTYPES.get(precision, "")), NO_PEAKS)


def as_number(value) -> float:
    """``value`` as a float; NaN for None, empty or text (CSV cells, JSON nulls)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
