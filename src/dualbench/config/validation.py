"""Validation of a config: the schema (with its defaults filled in), the rules the schema
cannot express, and the machine check (dualbench.config.machine_fit). Every mistake is one
ConfigError line naming the key and the fix, raised before any job starts.
"""

from __future__ import annotations

import copy
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dualbench.config.machine_fit import resolve_on, unresolved
from dualbench.config.model_sources import parse_source, validate_checkpoint
from dualbench.config.params import slot_settings
from dualbench.config.vocabulary import (
    alone_layout,
    default_layouts,
    is_group,
    layout_schedule,
    layout_slots,
    model_names,
)
from dualbench.config.yaml_file import read_yaml
from dualbench.errors import ConfigError, SourceError


def schema() -> dict:
    text = resources.files("dualbench.config").joinpath("schema.yaml").read_text()
    return yaml.safe_load(text)


def _validator_with_defaults():
    """A Draft 2020-12 validator that also fills ``default`` values (jsonschema's documented
    extension recipe), so defaults live in one place: the schema."""
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def _one_line(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        where = f"{key}." if error.absolute_path else ""
        return (
            f"unknown key {where}{extra[0] if extra else '?'}: remove it or use one of: {allowed}"
        )
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        where = f"{key}." if error.absolute_path else ""
        return f"missing key {where}{missing[0]}: add it (see config/README.md)"
    if error.validator == "pattern" and error.schema.get("pattern", "").startswith("^[A-Za-z]"):
        return (
            f"{key}: {error.instance!r} is not a model name; use letters and digits, starting "
            "with a letter, at most 16 (e.g. A, B, C, small1)"
        )
    if key == "slots" or key.startswith("slots."):
        return (
            f"{key}: {error.instance!r} is not valid; use auto, one device per model such as "
            "[npu:0, npu:1], [cuda:0, cuda:0] or [cpu:0-3, cpu:4-7], or a mapping such as "
            "{A: npu:0, B: {device: npu:0, core_limit: {cube: 12, vector: 24}}}"
        )
    if key == "run.exclusivity":
        return f"run.exclusivity: {error.instance!r} is not a policy; use fail, warn or off"
    if error.validator == "pattern" and key.endswith("source"):
        return (
            f"{key}: {error.instance!r} is not a model source; use synthetic:<preset>, "
            "hf:<repo>[@revision], modelscope:<id> or local:<dir>"
        )
    message = error.message.replace("\n", " ")
    return f"{key}: {message}"


def validate(raw: dict, machine=None) -> dict:
    """Validate ``raw`` against the schema and return a new dict with defaults filled in.

    ``machine`` (a dualbench.hardware.Machine, or a test's stand-in with the same attributes)
    adds the checks against this machine's hardware and resolves ``device: auto`` and the
    ``native16`` precision; without one (a cluster's login node, unit tests) neither happens
    and ``native16`` is refused. What was resolved is kept under ``cfg["resolved"]``.

    Raises ConfigError with one line naming the offending key.
    """
    cfg = copy.deepcopy(raw if raw is not None else {})
    _check_finite(cfg, "")
    _check_renamed(cfg)
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_one_line(best))
    # Defaults inside additionalProperties (scenarios) and nested $refs are filled by the
    # validator as it descends; run it once more so nested defaults of defaults settle.
    validator.validate(cfg)
    _check_semantics(cfg)
    cfg["run"]["exclusivity"] = _exclusivity_mode(cfg["run"]["exclusivity"])
    cfg["resolved"] = resolve_on(machine, cfg) if machine is not None else unresolved(cfg)
    cfg["precisions"] = cfg["resolved"]["precisions"]
    return cfg


def _check_renamed(cfg: dict) -> None:
    """A key of the repeat-block design, which sessions replaced: say what took its place
    rather than only that it is unknown."""
    if "repeats" in cfg:
        raise ConfigError(
            "repeats: repeat blocks were replaced by measuring sessions; remove it and set "
            "scenarios.<name>.rounds (auto, the default, or a count) instead"
        )
    for name, scenario in (cfg.get("scenarios") or {}).items():
        if isinstance(scenario, dict) and "duration_s" in scenario:
            raise ConfigError(
                f"scenarios.{name}.duration_s: renamed trial_s (the window of each trial of "
                f"the session); rename the key"
            )


def _exclusivity_mode(value: str | bool) -> str:
    # YAML 1.1 (PyYAML, Snakemake's loader) reads a bare `off` as false.
    return "off" if value is False else value


def exclusivity_policy(raw: dict | None) -> dict:
    """What a measuring job's start-up check reads: ``{"mode": run.exclusivity,
    "busy_cpu_fraction": run.busy_cpu_fraction}`` of the config ``raw``, defaults filled in.

    The jobs read these from Snakemake's config, not from their params: the policy changes
    what a job does when its slots are busy, not what a run measures, so editing it must
    rerun nothing (params are cache keys). Only the ``run`` section is validated here; the
    Snakefile validated the whole config before the job was scheduled."""
    section = copy.deepcopy({"run": (raw or {}).get("run") or {}})
    _check_finite(section, "")
    run_schema = {"type": "object", "properties": {"run": schema()["properties"]["run"]}}
    errors = list(_validator_with_defaults()(run_schema).iter_errors(section))
    if errors:
        raise ConfigError(_one_line(jsonschema.exceptions.best_match(errors)))
    run = section["run"]
    return {
        "mode": _exclusivity_mode(run["exclusivity"]),
        "busy_cpu_fraction": run["busy_cpu_fraction"],
    }


def _check_finite(value: Any, key: str) -> None:
    # YAML reads .nan and .inf as floats, and every comparison with NaN is false, so
    # "exclusiveMinimum: 0" lets a NaN duration through: refuse them all before the schema.
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value} is not a finite number; write a number such as 10")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}.{i}")


def _check_semantics(cfg: dict) -> None:
    """Rules the schema cannot express: model names across keys, slots, layouts, source syntax
    and checkpoints, context length, arrivals and sweeps."""
    names = model_names(cfg)
    cfg["slots"] = _normalised_slots(cfg["slots"], names, cfg["device"])
    cfg["layouts"] = _checked_layouts(cfg.get("layouts"), names)
    _check_core_limits(cfg, names)
    limits = {}
    for slot in names:
        source = cfg["models"][slot]["source"]
        try:
            kind, ref = parse_source(source)
            if kind == "local":
                validate_checkpoint(Path(ref).expanduser(), source)
            limits[slot] = model_context_length(source)
        except (ConfigError, SourceError) as error:
            raise ConfigError(f"models.{slot}.source: {error}") from None
    for name, scenario in cfg["scenarios"].items():
        for slot in scenario["slots"]:
            if slot not in names:
                raise ConfigError(
                    f"scenarios.{name}.slots.{slot}: no model is named {slot}; use one of "
                    f"{', '.join(names)}"
                )
        _check_arrivals(name, scenario)
        _check_turns(name, cfg, names)
        if scenario["sweep"] is not None:
            _check_sweep(name, scenario["sweep"], cfg["layouts"], names)
        for slot in names:
            settings = slot_settings(cfg, name, slot)
            limit = limits[slot]
            need = settings["prompt_tokens"] + settings["new_tokens"]
            if limit is not None and need > limit:
                raise ConfigError(
                    f"scenarios.{name}: prompt_tokens + new_tokens = {need} for slot {slot} "
                    f"exceeds the context of model {slot} ({limit} tokens); shorten the prompt"
                )


def _normalised_slots(slots, names: tuple[str, ...], device: str):
    """``auto``, or {model: {"device": ..., ["core_limit": ...]}} for every model: a list is
    read in sorted model-name order, a mapping must name every model and nothing else."""
    if slots == "auto":
        return slots
    if isinstance(slots, list):
        if len(slots) != len(names):
            raise ConfigError(
                f"slots: {len(slots)} devices for {len(names)} models ({', '.join(names)}); "
                "list one device per model in sorted name order, or use auto"
            )
        slots = dict(zip(names, slots, strict=True))
    unknown = sorted(set(slots) - set(names))
    missing = [n for n in names if n not in slots]
    if unknown:
        raise ConfigError(
            f"slots.{unknown[0]}: no model is named {unknown[0]}; use one of {', '.join(names)}"
        )
    if missing:
        raise ConfigError(f"slots: model {missing[0]} has no slot; add slots.{missing[0]}")
    normal = {
        n: dict(slots[n]) if isinstance(slots[n], dict) else {"device": slots[n]} for n in names
    }
    kinds = {entry["device"].split(":", 1)[0] for entry in normal.values()}
    if len(kinds) != 1:
        raise ConfigError(
            f"slots: {', '.join(e['device'] for e in normal.values())} mixes device kinds; "
            "every slot must be one kind"
        )
    (kind,) = kinds
    if device not in ("auto", kind):
        raise ConfigError(
            f"slots: the slots are {kind} devices but device is {device!r}; "
            f"set device: {kind} (or auto)"
        )
    for n, entry in normal.items():
        if "core_limit" in entry and kind != "npu":
            raise ConfigError(
                f"slots.{n}.core_limit: core limits split an Ascend NPU's AI cores and exist "
                f"on npu slots only, not {entry['device']}; remove core_limit"
            )
    return normal


def _checked_layouts(layouts, names: tuple[str, ...]) -> list[str]:
    """The layouts, each spelled by the grammar of dualbench.config.vocabulary and naming
    models that exist; by default every model alone and then all co-located. Two spellings of
    the same runs (colocated:A+B and colocated when A and B are all the models) are refused."""
    if layouts is None:
        return default_layouts(names)
    seen: dict[tuple, str] = {}
    for layout in layouts:
        members = layout_slots(layout, names)
        if is_group(layout) and len(names) < 2:
            raise ConfigError(
                f"layouts: {layout} runs models side by side but models defines only "
                f"{names[0]}; add a model or use alone_{names[0]}"
            )
        key = (layout_schedule(layout), is_group(layout), members)
        if key in seen:
            raise ConfigError(
                f"layouts: {layout} and {seen[key]} are the same runs; keep one of them"
            )
        seen[key] = layout
    return list(layouts)


def _check_core_limits(cfg: dict, names: tuple[str, ...]) -> None:
    """A core limit is set once per worker process (torch.npu.set_device_limit): a
    single-thread layout holds several models in one process, which one limit cannot split."""
    if cfg["slots"] == "auto":
        return
    limited = {n for n, entry in cfg["slots"].items() if "core_limit" in entry}
    for layout in cfg["layouts"]:
        shared = [n for n in layout_slots(layout, names) if n in limited]
        if layout_schedule(layout) == "single_thread" and shared:
            raise ConfigError(
                f"layouts: {layout} runs its models in one process, where slot {shared[0]}'s "
                "core_limit (set once per process) cannot apply to one model only; drop "
                f"{layout} from layouts or the core limits"
            )


def _check_turns(name: str, cfg: dict, names: tuple[str, ...]) -> None:
    """Lockstep passes a turn between busy workers, and a single thread drives its models one
    call after the other: neither has room for a slot that waits for its next arrival."""
    for layout in cfg["layouts"]:
        schedule = layout_schedule(layout)
        if schedule == "free":
            continue
        for slot in layout_slots(layout, names):
            if slot_settings(cfg, name, slot).get("arrival"):
                raise ConfigError(
                    f"scenarios.{name}: slot {slot} has open-loop arrivals, which layout "
                    f"{layout} cannot drive (its slots run back to back); set the arrival to "
                    f"null for {slot} or drop {layout} from layouts"
                )


def _check_arrivals(name: str, scenario: dict) -> None:
    """A burstiness other than 1 means gamma gaps: with process poisson it would be ignored."""
    where = [(f"scenarios.{name}.arrival", scenario["arrival"])]
    where += [
        (f"scenarios.{name}.slots.{slot}.arrival", over.get("arrival"))
        for slot, over in scenario["slots"].items()
    ]
    where.append((f"scenarios.{name}.sweep", scenario["sweep"]))
    for key, arrival in where:
        if arrival and arrival["process"] == "poisson" and arrival["burstiness"] != 1:
            raise ConfigError(
                f"{key}: burstiness {arrival['burstiness']} applies to process gamma only "
                "(poisson is gamma with burstiness 1); set process: gamma or drop burstiness"
            )


def _check_sweep(name: str, sweep: dict, layouts: list[str], names: tuple[str, ...]) -> None:
    """The neighbour defaults to the first other model; fraction 0 anchors the curve; the
    neighbour's solo capacity comes from its latest alone trial of the session, so that layout
    must run."""
    key = f"scenarios.{name}.sweep"
    victim = sweep.setdefault("victim", names[0])
    for role in ("victim", "neighbour"):
        if role in sweep and sweep[role] not in names:
            raise ConfigError(
                f"{key}.{role}: no model is named {sweep[role]}; use one of {', '.join(names)}"
            )
    if len(names) < 2:
        raise ConfigError(f"{key}: a sweep needs two models, models defines one; remove sweep")
    if "neighbour" not in sweep:
        sweep["neighbour"] = next(s for s in names if s != victim)
    if sweep["neighbour"] == victim:
        raise ConfigError(f"{key}: victim and neighbour are both {victim}; name two slots")
    if 0 not in sweep["fractions"]:
        raise ConfigError(
            f"{key}.fractions: {sweep['fractions']} lacks 0 (the victim alone, the curve's "
            "BW_max); add 0"
        )
    needed = alone_layout(sweep["neighbour"])
    if needed not in layouts:
        raise ConfigError(
            f"{key}: the neighbour's solo capacity comes from layout {needed}, which layouts "
            f"{layouts} does not run; add {needed} to layouts"
        )


def model_context_length(source: str) -> int | None:
    """Context length of a model known without loading it (None when unknowable yet)."""
    kind, ref = parse_source(source)
    if kind == "synthetic":
        from dualbench.model_shapes import SYNTHETIC_PRESETS

        preset = SYNTHETIC_PRESETS.get(ref)
        if preset is None:
            names = ", ".join(sorted(SYNTHETIC_PRESETS))
            raise ConfigError(
                f"model source {source!r}: unknown synthetic preset; use one of {names}"
            )
        return preset["max_position_embeddings"]
    if kind == "local":
        config_json = Path(ref).expanduser() / "config.json"
        if config_json.is_file():
            try:
                return int(json.loads(config_json.read_text())["max_position_embeddings"])
            except (KeyError, ValueError, TypeError):
                return None
    return None


def load(path: str | Path, machine=None) -> dict:
    """Read and validate a YAML config file (see ``validate`` for ``machine``)."""
    return validate(read_yaml(path), machine)
