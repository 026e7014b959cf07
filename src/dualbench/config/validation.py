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
from dualbench.config.vocabulary import SLOT_NAMES, alone_layout
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
    if key == "slots" or key.startswith("slots."):
        return (
            f"{key}: {error.instance!r} is not valid; use auto or two devices such as "
            "[npu:0, npu:1], [cuda:0, cuda:0] or [cpu:0-3, cpu:4-7]"
        )
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
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_one_line(best))
    # Defaults inside additionalProperties (scenarios) and nested $refs are filled by the
    # validator as it descends; run it once more so nested defaults of defaults settle.
    validator.validate(cfg)
    _check_semantics(cfg)
    cfg["resolved"] = resolve_on(machine, cfg) if machine is not None else unresolved(cfg)
    cfg["precisions"] = cfg["resolved"]["precisions"]
    return cfg


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
    """Rules the schema cannot express: source syntax and checkpoints, context length, slots."""
    slots = cfg["slots"]
    if slots != "auto":
        kinds = {s.split(":", 1)[0] for s in slots}
        if len(kinds) != 1:
            raise ConfigError(f"slots: {slots} mixes device kinds; both slots must be one kind")
        (kind,) = kinds
        if cfg["device"] not in ("auto", kind):
            raise ConfigError(
                f"slots: {slots} are {kind} devices but device is {cfg['device']!r}; "
                f"set device: {kind} (or auto)"
            )
    limits = {}
    for slot in SLOT_NAMES:
        source = cfg["models"][slot]["source"]
        try:
            kind, ref = parse_source(source)
            if kind == "local":
                validate_checkpoint(Path(ref).expanduser(), source)
            limits[slot] = model_context_length(source)
        except (ConfigError, SourceError) as error:
            raise ConfigError(f"models.{slot}.source: {error}") from None
    for name, scenario in cfg["scenarios"].items():
        _check_arrivals(name, scenario)
        if scenario["sweep"] is not None:
            _check_sweep(name, scenario["sweep"], cfg["layouts"])
        for slot in SLOT_NAMES:
            settings = slot_settings(cfg, name, slot)
            limit = limits[slot]
            need = settings["prompt_tokens"] + settings["new_tokens"]
            if limit is not None and need > limit:
                raise ConfigError(
                    f"scenarios.{name}: prompt_tokens + new_tokens = {need} for slot {slot} "
                    f"exceeds the context of model {slot} ({limit} tokens); shorten the prompt"
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


def _check_sweep(name: str, sweep: dict, layouts: list[str]) -> None:
    """The neighbour defaults to the other slot; fraction 0 anchors the curve; the neighbour's
    solo capacity comes from its alone run of the same block, so that layout must run."""
    key = f"scenarios.{name}.sweep"
    victim = sweep["victim"]
    if "neighbour" not in sweep:
        sweep["neighbour"] = next(s for s in SLOT_NAMES if s != victim)
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
