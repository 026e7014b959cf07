"""The typed view of the configuration: validation, defaults, and the canonical per-rule slices.

Everything Snakemake caches on goes through the ``*_params`` helpers here. Each returns a
canonical JSON string (keys sorted recursively, no whitespace), built only from the keys that
rule reads, so that a config edit reruns exactly the rules whose slice changed, and reordering
or reformatting the YAML reruns nothing (DESIGN §4).

This module must stay cheap to import: the Snakefile imports it on every invocation, including
no-op ones, so no torch and no transformers here.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SLOT_NAMES = ("A", "B")
LAYOUTS = ("alone_A", "alone_B", "colocated")
PER_SLOT_KEYS = ("prompt_tokens", "new_tokens", "batch_size", "warmup_requests", "min_requests")
# The int4 keys the convert rule reads; int4.kernel is read by the run rule only.
INT4_CONVERT_KEYS = ("group_size", "symmetric", "quantize_lm_head")


class ConfigError(ValueError):
    """A user-fixable configuration mistake; str() is one line naming the key and the fix."""


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
    """The one serialisation every rule's params use (see module docstring)."""
    return json.dumps(
        _normalise_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def schema() -> dict:
    text = resources.files("dualbench").joinpath("config.schema.yaml").read_text()
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


def validate(raw: dict) -> dict:
    """Validate ``raw`` against the schema and return a new dict with defaults filled in.

    Raises ConfigError with one line naming the offending key.
    """
    cfg = copy.deepcopy(raw if raw is not None else {})
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_one_line(best))
    # Defaults inside additionalProperties (scenarios) and nested $refs are filled by the
    # validator as it descends; run it once more so nested defaults of defaults settle.
    validator.validate(cfg)
    _check_semantics(cfg)
    return cfg


def _check_semantics(cfg: dict) -> None:
    """Rules the schema cannot express: availability, context length, slot devices."""
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
        try:
            limits[slot] = model_context_length(cfg["models"][slot]["source"])
        except ConfigError as error:
            raise ConfigError(f"models.{slot}.source: {error}") from None
    for name in cfg["scenarios"]:
        for slot in SLOT_NAMES:
            settings = slot_settings(cfg, name, slot)
            limit = limits[slot]
            need = settings["prompt_tokens"] + settings["new_tokens"]
            if limit is not None and need > limit:
                raise ConfigError(
                    f"scenarios.{name}: prompt_tokens + new_tokens = {need} for slot {slot} "
                    f"exceeds the context of model {slot} ({limit} tokens); shorten the prompt"
                )


def model_context_length(source: str) -> int | None:
    """Context length of a model known without loading it (None when unknowable yet)."""
    kind, _, ref = source.partition(":")
    if kind == "synthetic":
        from dualbench.presets import SYNTHETIC_PRESETS

        preset = SYNTHETIC_PRESETS.get(ref.strip())
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


def load(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}".replace("\n", " ")) from None
    return validate(raw)


# --- what each rule reads -------------------------------------------------------------------


def slot_settings(cfg: dict, scenario: str, slot: str) -> dict:
    """The per-slot workload of ``scenario``: scenario-wide values with the slot's overrides."""
    sc = cfg["scenarios"][scenario]
    merged = {k: sc[k] for k in PER_SLOT_KEYS}
    merged.update(sc.get("slots", {}).get(slot, {}))
    return merged


def layout_slots(layout: str) -> tuple[str, ...]:
    if layout == "colocated":
        return SLOT_NAMES
    if layout.startswith("alone_") and layout[6:] in SLOT_NAMES:
        return (layout[6:],)
    raise ConfigError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")


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


def run_spec(cfg: dict, scenario: str, precision: str, layout: str) -> dict:
    """Everything one run needs and nothing more: it is also the run's cache key."""
    sc = cfg["scenarios"][scenario]
    slot_devices = (
        cfg["slots"] if cfg["slots"] == "auto" else dict(zip(SLOT_NAMES, cfg["slots"], strict=True))
    )
    slots = {}
    for slot in layout_slots(layout):
        slots[slot] = {
            **slot_settings(cfg, scenario, slot),
            "model": slot,
            "device": slot_devices if slot_devices == "auto" else slot_devices[slot],
        }
    spec = {
        "scenario": scenario,
        "precision": precision,
        "layout": layout,
        "device": cfg["device"],
        "duration_s": sc["duration_s"],
        "seed": sc["seed"],
        "timeout_s": cfg["run"]["timeout_s"],
        "slots": slots,
        "telemetry": cfg["telemetry"],
    }
    # The allocator setting exists only on accelerators: on a CPU-only config it is not part
    # of the run, so editing it reruns nothing there.
    cpu_only = cfg["device"] == "cpu" or (
        cfg["slots"] != "auto" and all(s.startswith("cpu:") for s in cfg["slots"])
    )
    if not cpu_only:
        spec["allocator"] = cfg["allocator"]
    if precision == "int4":
        spec["int4_kernel"] = cfg["int4"]["kernel"]
    return spec


def run_params(cfg: dict, scenario: str, precision: str, layout: str) -> str:
    return canonical(run_spec(cfg, scenario, precision, layout))


def report_params(cfg: dict) -> str:
    return canonical(
        {
            "title": cfg["report"]["title"],
            "scenarios": {name: sc["description"] for name, sc in cfg["scenarios"].items()},
        }
    )
