"""What each rule reads: the canonical per-rule slices of the validated config.

Everything Snakemake caches on goes through the ``*_params`` helpers here. Each returns a
canonical JSON string (keys sorted recursively, no whitespace), built only from the keys that
rule reads, so that a config edit reruns exactly the rules whose slice changed, and reordering
or reformatting the YAML reruns nothing (DESIGN §4). ``run_spec`` is also the run's cache key.
"""

from __future__ import annotations

import json
from typing import Any

from dualbench.config.vocabulary import (
    COLOCATED,
    INT4_CONVERT_KEYS,
    PER_SLOT_KEYS,
    PRECISION_DTYPES,
    SUBSET_SEPARATOR,
    alone_layout,
    layout_schedule,
    layout_slots,
    model_names,
)


def _normalise_numbers(value: Any) -> Any:
    # 10 and 10.0 are the same setting: write both as 10, so the spelling reruns nothing.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise_numbers(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """The one serialisation every rule's params use (see the module docstring)."""
    return json.dumps(
        _normalise_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def slot_settings(cfg: dict, scenario: str, slot: str) -> dict:
    """The per-slot workload of ``scenario``: scenario-wide values with the slot's overrides.
    ``arrival`` is there only for an open-loop slot: a closed-loop slot's settings are what
    they were before open loops existed, so its runs keep their cache keys."""
    sc = cfg["scenarios"][scenario]
    merged = {k: sc[k] for k in PER_SLOT_KEYS}
    merged["arrival"] = sc.get("arrival")
    merged.update(sc.get("slots", {}).get(slot, {}))
    if merged["arrival"] is None:
        del merged["arrival"]
    return merged


def model_params(cfg: dict, model: str) -> str:
    """The source, plus only the keys that source kind uses: a seed matters only to a
    synthetic model, remote code only to a downloaded or local checkpoint."""
    m = cfg["models"][model]
    if m["source"].startswith("synthetic:"):
        return canonical({"source": m["source"], "seed": m["seed"]})
    return canonical({"source": m["source"], "trust_remote_code": m["trust_remote_code"]})


def convert_params(cfg: dict, precision: str) -> str:
    """The precision, plus the int4 settings for int4 only: editing int4.group_size rebuilds
    the INT4 artifact and nothing 16-bit."""
    params = {"precision": precision}
    if precision == "int4":
        params["int4"] = {k: cfg["int4"][k] for k in INT4_CONVERT_KEYS}
    return canonical(params)


def _cpu_only(cfg: dict) -> bool:
    devices = slot_devices(cfg)
    return cfg["resolved"]["device"] == "cpu" or (
        devices != "auto" and all(d.startswith("cpu:") for d in devices.values())
    )


def slot_devices(cfg: dict) -> dict[str, str] | str:
    """``auto``, or each model's device string."""
    if cfg["slots"] == "auto":
        return "auto"
    return {name: entry["device"] for name, entry in cfg["slots"].items()}


def run_spec(cfg: dict, scenario: str, precision: str, layout: str) -> dict:
    """Everything one run needs and nothing more: it is also the run's cache key."""
    sc = cfg["scenarios"][scenario]
    names = model_names(cfg)
    devices = slot_devices(cfg)
    slots = {}
    for slot in layout_slots(layout, names):
        slots[slot] = {
            **slot_settings(cfg, scenario, slot),
            "model": slot,
            "device": devices if devices == "auto" else devices[slot],
        }
        if devices != "auto" and "core_limit" in cfg["slots"][slot]:
            slots[slot]["core_limit"] = cfg["slots"][slot]["core_limit"]
    spec = {
        "scenario": scenario,
        "precision": precision,
        "layout": layout,
        "device": cfg["resolved"]["device"],
        # A trial's window (scenarios.<s>.trial_s); the measuring code calls it duration_s.
        "duration_s": sc["trial_s"],
        "seed": sc["seed"],
        "timeout_s": cfg["run"]["timeout_s"],
        "slots": slots,
        "telemetry": cfg["telemetry"],
    }
    # Free-running layouts carry no schedule key: their cache keys are what they were before
    # lockstep and single-thread runs existed.
    if layout_schedule(layout) != "free":
        spec["schedule"] = layout_schedule(layout)
    # Auto slots spread every model over the devices (or cores) there are: which ones a model
    # gets depends on how many models share them, so that count is part of the run.
    if devices == "auto":
        spec["slot_names"] = list(names)
    # The allocator setting exists only on accelerators: on a CPU-only config it is not part
    # of the run, so editing it reruns nothing there.
    if not _cpu_only(cfg):
        spec["allocator"] = cfg["allocator"]
    if precision == "int4":
        spec["int4_kernel"] = cfg["int4"]["kernel"]
    return spec


def run_params(cfg: dict, scenario: str, precision: str, layout: str) -> str:
    return canonical(run_spec(cfg, scenario, precision, layout))


def sweep_point(fraction: float) -> str:
    """The name of a sweep point (its results folder): f0, f0.2, f1."""
    return f"f{fraction:g}"


# A sweep point's trial name inside a session (its folder under the round's): sweep/f0.2.
SWEEP_PREFIX = "sweep/"
# The fewest rounds rounds: auto stops after: fewer, and a few lucky rounds pass for a tight
# interval (the sequential rule's coverage: dualbench.analysis.stopping).
MIN_AUTO_ROUNDS = 5


def sweep_trials(cfg: dict, scenario: str, precision: str) -> dict[str, dict]:
    """The contention sweep of ``scenario`` x ``precision`` as trials, one per fraction of the
    neighbour's solo capacity ({trial name: run spec with a ``sweep`` entry}). Fraction 0 is
    the victim alone; at the others the victim runs the scenario closed-loop beside the
    neighbour's open-loop arrivals, whose rate (fraction x capacity) the session sets from
    the neighbour's latest alone trial. The fractions are sorted, so reordering them in the
    YAML reruns nothing."""
    sweep = cfg["scenarios"][scenario]["sweep"]
    if not sweep:
        return {}
    victim, neighbour = sweep["victim"], sweep["neighbour"]
    # The pair is spelled as a subset even when it is every model, so that its trials read
    # the same whatever other models the config has.
    pair = f"{COLOCATED}:{SUBSET_SEPARATOR.join(sorted((victim, neighbour)))}"
    trials = {}
    for fraction in sorted(float(f) for f in sweep["fractions"]):
        spec = run_spec(cfg, scenario, precision, alone_layout(victim) if fraction == 0 else pair)
        spec["slots"][victim].pop("arrival", None)  # the victim always runs closed-loop
        if fraction > 0:
            spec["slots"][neighbour]["arrival"] = {
                "process": sweep["process"],
                "rate_rps": None,  # fraction x the neighbour's measured capacity, at run time
                "burstiness": sweep["burstiness"],
                "max_backlog": 1.0,  # driven to saturation on purpose: never invalid
            }
        spec["sweep"] = {"victim": victim, "neighbour": neighbour, "fraction": fraction}
        trials[SWEEP_PREFIX + sweep_point(fraction)] = spec
    return trials


def session_spec(cfg: dict, scenario: str, precision: str) -> dict:
    """The measuring session of ``scenario`` x ``precision``: every trial it runs in each
    round (its layouts, then its sweep points), how many rounds, and what stops rounds: auto.
    Its cache key: editing the scenario, its rounds or its trial length reruns this session
    only; the order of a round's trials comes from the seed (dualbench.config.round_order)."""
    sc = cfg["scenarios"][scenario]
    trials = {layout: run_spec(cfg, scenario, precision, layout) for layout in cfg["layouts"]}
    trials.update(sweep_trials(cfg, scenario, precision))
    return {
        "scenario": scenario,
        "precision": precision,
        "seed": sc["seed"],
        "rounds": sc["rounds"],
        "min_rounds": MIN_AUTO_ROUNDS,
        "target_half_width": sc["target_half_width"],
        "max_s": sc["max_s"],
        "confidence": cfg["analysis"]["confidence"],
        # INT4's ratios are judged against the dense session of the same scenario.
        "baseline": dense_baseline(cfg["precisions"]) if precision == "int4" else None,
        "trials": trials,
    }


def dense_baseline(precisions) -> str | None:
    """The dense precision INT4 is compared with (as dualbench.analysis.int4.int4_baseline):
    fp16 where it runs, else bf16, else fp32."""
    return next((p for p in ("fp16", "bf16", "fp32") if p in precisions), None)


def session_params(cfg: dict, scenario: str, precision: str) -> str:
    return canonical(session_spec(cfg, scenario, precision))


def calibration_dtypes(cfg: dict) -> list[str]:
    """The compute dtypes of the config's precisions (int4 computes in bf16): one calibration
    per slot and dtype."""
    return sorted({PRECISION_DTYPES[p] for p in cfg["precisions"]})


def calibration_spec(cfg: dict, slot: str, dtype: str) -> dict:
    """What the calibration of ``slot`` in ``dtype`` needs: every slot's device (the contended
    copy runs on all of them), the dtype and the calibration settings. Scenarios, models and
    precisions are not in it: editing them never recalibrates."""
    settings = cfg["calibration"]
    mib = settings["copy_mib"]
    spec = {
        "device": cfg["resolved"]["device"],
        "slots": slot_devices(cfg),
        "names": list(model_names(cfg)),
        "slot": slot,
        "dtype": dtype,
        "repeats": settings["repeats"],
        "copy_bytes": None if mib == "auto" else mib * 2**20,
        "matmul_n": None if settings["matmul_n"] == "auto" else settings["matmul_n"],
        "allocator": "",
    }
    if not _cpu_only(cfg):
        spec["allocator"] = cfg["allocator"]
    return spec


def calibration_params(cfg: dict, slot: str, dtype: str) -> str:
    return canonical(calibration_spec(cfg, slot, dtype))


# A scenario's settings the report states as facts beside its free-text description: what a
# run's requests are and how they arrive; per model where a slot overrides them.
SCENARIO_FACTS = (
    "prompt_tokens",
    "new_tokens",
    "batch_size",
    "arrival",
    "min_requests",
    "trial_s",
)


def report_params(cfg: dict) -> str:
    return canonical(
        {
            "title": cfg["report"]["title"],
            "scenarios": {name: sc["description"] for name, sc in cfg["scenarios"].items()},
            "settings": {
                name: {
                    **{k: sc[k] for k in SCENARIO_FACTS},
                    "slots": {
                        slot: {k: v for k, v in over.items() if k in SCENARIO_FACTS}
                        for slot, over in sc["slots"].items()
                    },
                }
                for name, sc in cfg["scenarios"].items()
            },
            "hardware_notes": cfg["resolved"]["notes"] + cfg["resolved"]["warnings"],
        }
    )


def aggregate_params(cfg: dict) -> str:
    """The model sources the tables name (runs.csv's model column, environment.json) and how
    answers over rounds are judged (confidence, equivalence margin, drift tolerance)."""
    return canonical(
        {
            "models": {slot: cfg["models"][slot]["source"] for slot in model_names(cfg)},
            "analysis": cfg["analysis"],
        }
    )
