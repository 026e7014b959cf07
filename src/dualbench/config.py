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
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dualbench.backends.base import DeviceError, format_cores, parse_cores
from dualbench.precisions import NATIVE16, emulation_warning, resolve_native16
from dualbench.sources import SourceError, parse_source, validate_checkpoint

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
    cfg["resolved"] = _resolve_on(machine, cfg) if machine is not None else _unresolved(cfg)
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


def _unresolved(cfg: dict) -> dict:
    if NATIVE16 in cfg["precisions"]:
        raise ConfigError(
            "precisions: native16 is resolved against the hardware of the machine that runs "
            "Snakemake, which is not checked here (cluster execution); name the precision "
            "instead: bf16, fp16 or fp32"
        )
    return {
        "device": cfg["device"],
        "precisions": list(cfg["precisions"]),
        "notes": [],
        "warnings": [],
        "cpu": None,
    }


def _resolve_on(machine, cfg: dict) -> dict:
    """Check the config against ``machine`` and resolve what depends on its hardware."""
    kind = _device_kind(machine, cfg)
    devices = _check_slots(machine, cfg, kind)
    precisions, notes = [], []
    for precision in cfg["precisions"]:
        concrete = precision
        if precision == NATIVE16:
            concrete, why = resolve_native16(kind, machine.cpu, devices)
            notes.append(f"native16 = {concrete} on this {kind}: {why}")
        if concrete in precisions:
            notes.append(f"precisions: {precision} is {concrete}, already listed; run once")
            continue
        precisions.append(concrete)
    capability = None
    if kind == "cuda" and devices:
        capability = min(
            (d.compute_capability for d in devices if d.compute_capability), default=None
        )
    warnings = [
        w
        for p in precisions
        if (w := emulation_warning(kind, p, cpu=machine.cpu, capability=capability))
    ]
    return {
        "device": kind,
        "precisions": precisions,
        "notes": notes,
        "warnings": warnings,
        "cpu": machine.cpu.to_dict(),
    }


def _device_kind(machine, cfg: dict) -> str:
    """The backend the runs will use, decided here so the run specs (the cache keys) say it.

    ``auto`` follows the runtime rule (npu, else cuda, else cpu), read from the management
    tools instead of from torch so that nothing initialises a device in Snakemake."""
    device, slots = cfg["device"], cfg["slots"]
    if device == "auto" and slots != "auto":
        device = slots[0].split(":", 1)[0]
    if device == "auto":
        # Cheapest question first: a machine without torch_npu never runs npu-smi.
        if machine.has_torch_npu and machine.npu:
            return "npu"
        if not machine.cpu_only_torch and machine.cuda:
            return "cuda"
        return "cpu"
    if device == "npu" and not machine.has_torch_npu:
        raise ConfigError(
            "device: npu needs torch_npu (Ascend CANN + torch_npu matching your torch), which "
            "is not installed; install them (envs/npu.yaml) or set device: cpu"
        )
    return device


def _check_slots(machine, cfg: dict, kind: str) -> list:
    """The accelerators the slots will use (empty on CPU), after checking they exist."""
    slots = cfg["slots"]
    if kind == "cpu":
        if slots != "auto":
            usable = set(machine.cpu.usable_cores)
            for spec in slots:
                try:
                    cores = parse_cores(spec.split(":", 1)[1])
                except DeviceError as error:
                    raise ConfigError(f"slots: {spec}: {error}") from None
                outside = sorted(set(cores) - usable)
                if outside:
                    raise ConfigError(
                        f"slots: {spec} names cores {format_cores(outside)} outside this "
                        f"process's affinity mask ({format_cores(sorted(usable))}); fix slots"
                    )
        return []
    listing = machine.cuda if kind == "cuda" else machine.npu
    tool = "nvidia-smi" if kind == "cuda" else "npu-smi info"
    if listing is None:
        raise ConfigError(
            f"device: {kind}, but {tool.split()[0]} is not installed, so this machine shows no "
            f"{kind} device; install the driver or set device: cpu"
        )
    if not listing:
        raise ConfigError(f"device: {kind}, but {tool} lists no device; set device: cpu")
    if kind == "cuda" and machine.cpu_only_torch:
        raise ConfigError(
            "device: cuda, but the installed torch is the CPU-only build; install a CUDA "
            "build of torch (envs/cuda.yaml) or set device: cpu"
        )
    if slots == "auto":
        return list(listing[:2])
    used = []
    for spec in slots:
        index = int(spec.split(":", 1)[1])
        if index >= len(listing):
            names = ", ".join(f"{kind}:{d.index} {d.name}" for d in listing)
            raise ConfigError(
                f"slots: {spec} does not exist: {tool} lists {len(listing)} ({names}); fix slots"
            )
        used.append(listing[index])
    return used


def model_context_length(source: str) -> int | None:
    """Context length of a model known without loading it (None when unknowable yet)."""
    kind, ref = parse_source(source)
    if kind == "synthetic":
        from dualbench.presets import SYNTHETIC_PRESETS

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: the
    plain loader (and Snakemake's) silently keeps the last value."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.name} line {line}: key {key!r} is given twice (first on line "
                    f"{seen[key]}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML config file's content; duplicated keys and syntax errors are one-line errors."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}".replace("\n", " ")) from None
    finally:
        loader.dispose()


def load(path: str | Path, machine=None) -> dict:
    """Read and validate a YAML config file (see ``validate`` for ``machine``)."""
    return validate(read_yaml(path), machine)


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
        "device": cfg["resolved"]["device"],
        "duration_s": sc["duration_s"],
        "seed": sc["seed"],
        "timeout_s": cfg["run"]["timeout_s"],
        "slots": slots,
        "telemetry": cfg["telemetry"],
    }
    # The allocator setting exists only on accelerators: on a CPU-only config it is not part
    # of the run, so editing it reruns nothing there.
    cpu_only = cfg["resolved"]["device"] == "cpu" or (
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
            "hardware_notes": cfg["resolved"]["notes"] + cfg["resolved"]["warnings"],
        }
    )
