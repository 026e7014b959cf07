"""The words every stage shares: model (slot) names, layouts, schedules, per-slot workload keys,
precisions and the dtypes they mean. Plain data and pure functions: the Snakefile reads it at
parse time, workers and analysis read it too, so nothing here imports more than the standard
library.

Models and slots. The config's ``models:`` keys name the models; each model runs in its own
slot (device or core set), so a slot is named after its model. Names are kept in sorted order
everywhere (``model_names``), so reordering the YAML reruns nothing.

Layouts. A layout says which models run at once and how:
- ``alone_<name>``: one model by itself (its V1);
- ``colocated``: every model at once, each in its own worker process, free-running;
- ``colocated:<name>+<name>[+...]``: a subset of them (the scaling curve's middle points);
- ``lockstep`` / ``lockstep:<names>``: co-located, the workers taking their forward passes in
  strict turns (the origin note's alternating pipeline);
- ``single_thread_streams`` / ``single_thread_streams:<names>``: the origin note's own test
  code: every model in one process, their generate calls made one after the other from one
  thread (each under its own device stream on NPU/CUDA).
"""

from __future__ import annotations

from dualbench.errors import ConfigError

# The default config's models; nothing else depends on these two names.
DEFAULT_MODELS = ("A", "B")
# A model name: it becomes part of layout names, file names and table columns, so letters and
# digits only (``_``, ``:`` and ``+`` are the layout grammar's separators).
MODEL_NAME_PATTERN = "^[A-Za-z][A-Za-z0-9]{0,15}$"

COLOCATED = "colocated"
LOCKSTEP = "lockstep"
SINGLE_THREAD = "single_thread_streams"
# The layouts that run several models at once, and the schedule each means.
GROUP_KINDS = {COLOCATED: "free", LOCKSTEP: "lockstep", SINGLE_THREAD: "single_thread"}
ALONE_PREFIX = "alone_"
SUBSET_SEPARATOR = "+"

PER_SLOT_KEYS = ("prompt_tokens", "new_tokens", "batch_size", "warmup_requests", "min_requests")
# The int4 keys the convert rule reads; int4.kernel is read by the run rule only.
INT4_CONVERT_KEYS = ("group_size", "symmetric", "quantize_lm_head")

# ``native16`` is an alias, resolved once at validation against the machine's hardware facts
# (dualbench.native_dtypes), so every cache key and results path holds a concrete precision.
NATIVE16 = "native16"
# What a config may list; the schema's enum says the same.
PRECISIONS = (NATIVE16, "fp32", "bf16", "fp16", "int4")
# The dtype a worker must find in its loaded weights for each concrete precision: a checkpoint
# that loads as something else would be benchmarked at the wrong precision without a word.
# INT4 is weight-only: its 16-bit tensors and activations are bf16 (dualbench.models.int4).
PRECISION_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int4": "bfloat16"}


def model_names(cfg: dict) -> tuple[str, ...]:
    """The config's model names, sorted: the order of slots everywhere."""
    return tuple(sorted(cfg["models"]))


def alone_layout(slot: str) -> str:
    """The layout in which ``slot`` runs by itself."""
    return f"{ALONE_PREFIX}{slot}"


def group_layout(kind: str, members, names) -> str:
    """The layout of ``kind`` running ``members``: the bare kind when they are all of ``names``,
    else ``kind:<sorted members joined by +>``."""
    members = tuple(sorted(members))
    if members == tuple(sorted(names)):
        return kind
    return f"{kind}:{SUBSET_SEPARATOR.join(members)}"


def default_layouts(names) -> list[str]:
    """Every model alone, then all of them co-located (only alone for a single model)."""
    layouts = [alone_layout(n) for n in names]
    return layouts + [COLOCATED] if len(names) > 1 else layouts


def layout_kind(layout: str) -> str:
    """``alone`` or one of GROUP_KINDS."""
    if layout.startswith(ALONE_PREFIX):
        return "alone"
    kind = layout.split(":", 1)[0]
    if kind not in GROUP_KINDS:
        raise ConfigError(_unknown(layout))
    return kind


def layout_schedule(layout: str) -> str:
    """How the layout's models are driven: ``free`` (alone or co-located, each its own worker
    running freely), ``lockstep`` or ``single_thread``."""
    kind = layout_kind(layout)
    return "free" if kind == "alone" else GROUP_KINDS[kind]


def layout_slots(layout: str, names) -> tuple[str, ...]:
    """The slots (models) a layout runs, in sorted order; ConfigError for a layout that is not
    spelled by the grammar above or names a model that ``names`` lacks."""
    names = tuple(sorted(names))
    if layout.startswith(ALONE_PREFIX):
        slot = layout.removeprefix(ALONE_PREFIX)
        if slot not in names:
            raise ConfigError(_unknown(layout, names))
        return (slot,)
    kind, _, subset = layout.partition(":")
    if kind not in GROUP_KINDS:
        raise ConfigError(_unknown(layout, names))
    if not subset:
        return names
    members = subset.split(SUBSET_SEPARATOR)
    unknown = [m for m in members if m not in names]
    if unknown:
        raise ConfigError(
            f"layout {layout!r} names model {unknown[0]!r}, which models does not define; "
            f"use models from {', '.join(names)}"
        )
    if len(set(members)) != len(members) or len(members) < 2:
        raise ConfigError(
            f"layout {layout!r} must name two or more different models, e.g. "
            f"{kind}:{SUBSET_SEPARATOR.join(names[:2])}"
        )
    if members != sorted(members):
        raise ConfigError(
            f"layout {layout!r}: write its models in sorted order, "
            f"{kind}:{SUBSET_SEPARATOR.join(sorted(members))}"
        )
    return tuple(members)


def is_group(layout: str) -> bool:
    """Whether the layout runs more than one model at once."""
    return layout_kind(layout) != "alone"


def _unknown(layout: str, names=DEFAULT_MODELS) -> str:
    examples = [alone_layout(names[0]), COLOCATED, LOCKSTEP, SINGLE_THREAD]
    if len(names) > 2:
        examples.append(f"{COLOCATED}:{SUBSET_SEPARATOR.join(names[:2])}")
    return (
        f"layout {layout!r} is unknown; use alone_<model>, colocated, lockstep or "
        f"single_thread_streams (optionally :<model>+<model> for a subset), e.g. "
        f"{', '.join(examples)}"
    )
