"""The roofline of one run's slot: what its decode steps and its prefill read and compute
(dualbench.analysis.roofline's formulas on the loaded model's shape and the converted
checkpoint's bytes), what they achieved in the measured times, and against the slot's
calibrated peaks (dualbench.analysis.calibration) its MBU, MFU and regime.

Times: a decode step is the mean TPOT (every request of a slot has the same n − 1 steps, so
the mean TPOT is total decode time over steps, and bytes / mean TPOT is the mean bandwidth);
prefill is the mean TTFT less the mean queueing delay of an open-loop slot. MBU and MFU are
against the slot's peaks measured alone, in co-located runs too: how far co-location pushes a
slot below what it could reach by itself is the point. A single-thread run is the exception
(``process_peaks``): its one process is pinned to the union of its slots' cores, so each call
is held against the ceilings of those cores together, not one slot's.
"""

from __future__ import annotations

import math

from dualbench.analysis.calibration import Peaks, as_number, run_peaks
from dualbench.analysis.columns import ROOFLINE_COLUMNS
from dualbench.analysis.roofline import (
    BOUND_FRACTION,
    Shape,
    decode_weight_bytes,
    kv_bytes_per_token,
    mean_decode_bytes,
    mean_decode_flops,
    prefill_flops,
    regime,
)
from dualbench.config.vocabulary import GROUP_KINDS, SINGLE_THREAD
from dualbench.model_shapes import SYNTHETIC_PRESETS

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def model_shape(result: dict) -> Shape | None:
    """The loaded model's shape: the config the worker recorded, else (records from before it
    did) the synthetic preset the conversion names; None for an unknown checkpoint."""
    config = result.get("model_config")
    if config:
        return Shape.from_config(config)
    source = (result.get("conversion") or {}).get("source", "")
    kind, _, name = source.partition(":")
    preset = SYNTHETIC_PRESETS.get(name) if kind == "synthetic" else None
    return Shape.from_config(preset) if preset else None


def weight_read_bytes(shape: Shape, conversion: dict) -> float:
    """Weight bytes a forward pass reads: the blocks' linear layers as stored (INT4: packed
    values, scales and zero points), plus lm_head and norms in the 16-bit dtype; with an INT4
    lm_head, lm_head at the blocks' bytes per weight."""
    per_weight = DTYPE_BYTES.get(conversion.get("dtype"), math.nan)
    linear = conversion.get("linear_weight_bytes")
    total = decode_weight_bytes(shape, per_weight, linear)
    if linear and conversion.get("quantize_lm_head"):
        packed_per_weight = linear / shape.block_linear_params
        total += shape.lm_head_params * (packed_per_weight - per_weight)
    return total


def roofline_columns(result: dict | None, settings: dict, row: dict, peaks: Peaks) -> dict:
    """``ROOFLINE_COLUMNS`` of one slot of one run. ``result``: the worker's result; ``row``:
    the slot's metrics (slot_metrics: tpot_ms_mean, ttft_ms_mean, queue_ms_mean); NaN and
    empty labels where a figure is missing."""
    out = dict.fromkeys(ROOFLINE_COLUMNS, math.nan)
    out.update(decode_regime="", prefill_regime="", regime="", regime_phase="")
    out.update(peak_bw_bytes_s=peaks.bw_bytes_s, peak_flop_s=peaks.flop_s)
    shape = model_shape(result or {})
    if shape is None:
        return out
    conversion = result.get("conversion") or {}
    kv_value = DTYPE_BYTES.get(result.get("dtype"), math.nan)
    batch, prompt, new = settings["batch_size"], settings["prompt_tokens"], settings["new_tokens"]
    weights = weight_read_bytes(shape, conversion)
    decode_s = as_number(row.get("tpot_ms_mean")) / 1e3
    queue_ms = as_number(row.get("queue_ms_mean"))
    queued_ms = 0.0 if math.isnan(queue_ms) else queue_ms
    prefill_s = (as_number(row.get("ttft_ms_mean")) - queued_ms) / 1e3
    if new >= 2:
        step_bytes = mean_decode_bytes(shape, weights, batch, prompt, new, kv_value)
        step_flops = mean_decode_flops(shape, batch, prompt, new)
        out.update(
            decode_bytes_per_step=step_bytes,
            decode_flops_per_step=step_flops,
            decode_intensity=step_flops / step_bytes,
            decode_bw_bytes_s=_per_s(step_bytes, decode_s),
            decode_flop_s=_per_s(step_flops, decode_s),
        )
    flops = prefill_flops(shape, batch, prompt)
    moved = weights + batch * prompt * kv_bytes_per_token(shape, kv_value)
    out.update(
        prefill_bytes=moved,
        prefill_flops=flops,
        prefill_intensity=flops / moved,
        prefill_bw_bytes_s=_per_s(moved, prefill_s),
        prefill_flop_s=_per_s(flops, prefill_s),
    )
    out["mbu"] = out["decode_bw_bytes_s"] / peaks.bw_bytes_s
    out["decode_mfu"] = out["decode_flop_s"] / peaks.flop_s
    out["prefill_mbu"] = out["prefill_bw_bytes_s"] / peaks.bw_bytes_s
    out["mfu"] = out["prefill_flop_s"] / peaks.flop_s
    out["decode_regime"] = _regime(out["mbu"], out["decode_mfu"])
    out["prefill_regime"] = _regime(out["prefill_mbu"], out["mfu"])
    # The phase that takes the larger part of a request names the slot's regime.
    decode_total_s = decode_s * (new - 1) if new >= 2 else 0.0
    prefill_longer = not math.isnan(prefill_s) and prefill_s > decode_total_s
    if math.isnan(decode_s) and math.isnan(prefill_s):
        return out  # nothing was timed (a failed run): no phase, no regime
    out["regime_phase"] = "prefill" if prefill_longer else "decode"
    out["regime"] = out[f"{out['regime_phase']}_regime"]
    return out


def _regime(mbu: float, mfu: float) -> str:
    if math.isnan(mbu) or math.isnan(mfu):
        return ""
    return regime(mbu, mfu, BOUND_FRACTION)


def _per_s(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else math.nan


def hosted_slots(record: dict, name: str) -> list[str]:
    """The slots whose cores slot ``name``'s calls ran on: in a single-thread run every slot
    its one process hosted (the worker's result names them, result["single_thread"]
    ["process_slots"]; a record without that name, every slot of the run), else ``name``."""
    result = record["slots"][name].get("result") or {}
    hosted = (result.get("single_thread") or {}).get("process_slots")
    if hosted:
        return list(hosted)
    if record["spec"].get("schedule") == GROUP_KINDS[SINGLE_THREAD]:
        return list(record["slots"])
    return [name]


def process_peaks(peaks: dict[tuple[str, str], Peaks], slots: list[str], precision: str) -> Peaks:
    """The ceilings of one process pinned to the union of ``slots``' cores, in the compute
    dtype of ``precision``: copy bandwidth = the sum of the slots' contended copy bandwidths,
    matmul = the sum of their matmul peaks; NaN where any slot lacks its figure.

    Contended, not alone: the union's cores share the memory the slots' alone copies each had
    to themselves, and the contended copies measured them all pulling at once (their sum is
    calibration.csv's contended total, the ceiling the report's wall holds the pair against,
    when the union is every calibrated slot). Summing the alone copies would promise more
    bandwidth than those cores can draw together. The matmul has no contended measurement and
    runs on each core's own arithmetic units, so the alone peaks add up."""
    each = [run_peaks(peaks, slot, precision) for slot in slots]
    copy = sum(p.contended_bw_bytes_s for p in each)
    return Peaks(
        bw_bytes_s=copy,
        contended_bw_bytes_s=copy,
        contended_total_bytes_s=each[0].contended_total_bytes_s if each else math.nan,
        flop_s=sum(p.flop_s for p in each),
    )


def add_roofline(record: dict, run_rows: list[dict], peaks: dict[tuple[str, str], Peaks]) -> None:
    """Fill the roofline columns of a record's runs.csv rows in place; ``peaks``: the
    calibrations by (slot, dtype) (analysis.calibration.peaks_by_slot). A slot's peaks are its
    own, a single-thread run's those of its process's cores (``process_peaks``)."""
    precision = record["spec"]["precision"]
    for row in run_rows:
        slot = record["slots"].get(row["slot"], {})
        if not slot:
            continue
        hosted = hosted_slots(record, row["slot"])
        ceiling = (
            run_peaks(peaks, row["slot"], precision)
            if hosted == [row["slot"]]
            else process_peaks(peaks, hosted, precision)
        )
        row.update(roofline_columns(slot.get("result"), slot["settings"], row, ceiling))
