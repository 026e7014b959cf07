"""The configuration: its vocabulary, validation against the schema and the machine, and the
canonical slice of it that each rule reads (DESIGN §4).

- ``vocabulary``: model (slot) names, the layout grammar, precisions and their dtypes;
- ``yaml_file``: reading a config file, duplicated keys refused;
- ``model_sources``: the syntax of a model source and a local checkpoint's required files;
- ``validation``: schema, defaults, the rules the schema cannot express;
- ``machine_fit``: the config against this machine (devices, cores, ``native16``);
- ``blocks``: the order in which a repeat block runs its layouts;
- ``cluster``: what a measuring job asks a cluster scheduler for (devices as resources);
- ``params``: what each rule reads, as canonical JSON (the cache keys).

The names below are the package's public face, used by the Snakefile and the CLI. Importing
it stays cheap (no torch, no transformers): the Snakefile imports it on every invocation.
"""

from dualbench.config.cluster import scheduler_resources
from dualbench.config.params import (
    aggregate_params,
    calibration_dtypes,
    calibration_params,
    calibration_spec,
    canonical,
    convert_params,
    model_params,
    report_params,
    run_params,
    run_spec,
    session_params,
    session_spec,
    slot_devices,
    slot_settings,
    sweep_point,
    sweep_trials,
)
from dualbench.config.validation import exclusivity_policy, load, schema, validate
from dualbench.config.vocabulary import alone_layout, layout_slots, model_names
from dualbench.config.yaml_file import read_yaml
from dualbench.errors import ConfigError

__all__ = [
    "ConfigError",
    "aggregate_params",
    "alone_layout",
    "calibration_dtypes",
    "calibration_params",
    "calibration_spec",
    "canonical",
    "convert_params",
    "exclusivity_policy",
    "layout_slots",
    "load",
    "model_names",
    "model_params",
    "read_yaml",
    "report_params",
    "run_params",
    "run_spec",
    "schema",
    "scheduler_resources",
    "slot_devices",
    "slot_settings",
    "session_params",
    "session_spec",
    "sweep_point",
    "sweep_trials",
    "validate",
]
