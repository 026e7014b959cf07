"""The words every stage shares: slot names, layouts, per-slot workload keys, precisions and
the dtypes they mean. Plain data: the Snakefile reads it at parse time, workers and analysis
read it too, so nothing here imports more than the standard library.
"""

from __future__ import annotations

from dualbench.errors import ConfigError

# The models' names: the config's ``models:`` keys, which the schema fixes at A and B for now.
# Code that needs the slots takes them from here, so more models change this line and the
# schema, not every stage.
SLOT_NAMES = ("A", "B")
# The layout that runs every slot at once (LAYOUTS: each slot alone, then this).
COLOCATED = "colocated"
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


def alone_layout(slot: str) -> str:
    """The layout in which ``slot`` runs by itself."""
    return f"alone_{slot}"


LAYOUTS = (*(alone_layout(slot) for slot in SLOT_NAMES), COLOCATED)


def layout_slots(layout: str) -> tuple[str, ...]:
    """The slots a layout runs, in slot order."""
    if layout == COLOCATED:
        return SLOT_NAMES
    for slot in SLOT_NAMES:
        if layout == alone_layout(slot):
            return (slot,)
    raise ConfigError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
