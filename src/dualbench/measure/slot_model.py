"""One slot's model inside a worker process: loading it (and, for the pipeline's own failure
tests, injecting a fault once it is loaded), warming it up, one timed generate call, sampling
the device from inside the process, and the slot's result as the runner reads it. Shared by the
one-slot worker and the single-thread schedule's host of several slots
(dualbench.measure.worker).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fault injection for the pipeline's own failure tests: DUALBENCH_FAULT="<slot>:<kind>" with kind
# crash | hang | oom, applied after loading, or crash_in_window: exit at the slot's second call
# after the release (a worker dying mid-run, its neighbours still measuring). Never set in
# normal use.
FAULT_ENV = "DUALBENCH_FAULT"
# The config.json keys of a Llama decoder's shape (analysis.roofline.Shape.from_config).
SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
)


def _inject_fault(slot: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    target, _, kind = spec.partition(":")
    if target != slot:
        return
    if kind == "crash":
        os._exit(3)
    if kind == "hang":
        while True:
            time.sleep(60)
    if kind == "oom":
        raise MemoryError(f"injected out-of-memory ({FAULT_ENV})")


def inject_window_fault(slot: str, call: int) -> None:
    if call == 1 and os.environ.get(FAULT_ENV, "") == f"{slot}:crash_in_window":
        os._exit(3)


def sample_utilization(read, interval_s: float, stop: threading.Event, out: list) -> None:
    """Append (perf_counter_ns, percent) every ``interval_s`` until ``stop``: the device's own
    view from inside the worker (torch.npu.utilization), beside npu-smi's from the parent. A
    driver query, no device sync: it does not wait for the measured work."""
    while not stop.wait(interval_s):
        try:
            value = read()
        except Exception:
            continue  # a gap, not a value
        if value is not None:
            out.append((time.perf_counter_ns(), float(value)))


@dataclass
class LoadedModel:
    """One slot's model, ready to generate: its prompts and decoding config, and what the
    result reports about loading it."""

    model: Any
    pool: list
    mask: Any
    gen_config: Any
    conversion: dict
    weights_info: dict
    load_s: float
    settings: dict  # the slot's workload it was loaded for (its prompt pool's shape)

    def generate(self, i: int, synchronize, ring=None, cut=None) -> dict:
        """Call i: the pool's prompts in turn (dualbench.measure.engine.timed_generate); ``cut``:
        the trial's stop event, which ends the call in flight."""
        from dualbench.measure.engine import timed_generate

        pool = self.pool
        return timed_generate(
            self.model, pool[i % len(pool)], self.mask, self.gen_config, synchronize, ring, cut
        )

    def warm_up(self, requests: int, synchronize) -> float:
        """Seconds of ``requests`` calls outside any window (never in a lockstep turn)."""
        started = time.perf_counter()
        for i in range(requests):
            self.generate(i, synchronize)
        return time.perf_counter() - started


def load_slot(spec: dict, slot, settings: dict, model_dir: str, backend, device, synchronize):
    """The converted model of ``model_dir`` on ``device`` with the slot's prompt pool. A fault
    injected for the slot (FAULT_ENV) strikes once its model is loaded."""
    import torch
    from transformers import AutoTokenizer

    from dualbench.measure.engine import generation_config, load_model
    from dualbench.workload import prompt_pool

    conversion = json.loads((Path(model_dir) / "conversion.json").read_text())
    load_started = time.perf_counter()
    model, weights_info = load_model(
        model_dir, device, backend.kind, spec.get("int4_kernel", "native")
    )
    synchronize()
    load_s = time.perf_counter() - load_started
    _inject_fault(slot.name)

    tokenizer = None if conversion["synthetic"] else AutoTokenizer.from_pretrained(model_dir)
    batch, n_prompt, n_new = (
        settings["batch_size"],
        settings["prompt_tokens"],
        settings["new_tokens"],
    )
    pool = [
        torch.tensor(p, dtype=torch.long, device=device)
        for p in prompt_pool(n_prompt, batch, spec["seed"], slot.name, tokenizer)
    ]
    eos = model.config.eos_token_id
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    return LoadedModel(
        model,
        pool,
        torch.ones_like(pool[0]),
        generation_config(n_new, pad, eos),
        conversion,
        weights_info,
        load_s,
        settings,
    )


def refuse_open_loop(settings: dict, slot: str, schedule: str) -> None:
    """An open-loop slot cannot be paced by another schedule: idle between its arrivals, it
    would hold a lockstep turn, or a single thread's round, for nothing."""
    if settings.get("arrival"):
        raise ValueError(
            f"slot {slot} has arrival settings (an open loop) but its layout is {schedule}, "
            f"which runs closed-loop only; remove its arrival or run it in a colocated layout"
        )


def slot_result(slot, loaded: LoadedModel, schedule, warmup_s: float, backend, memory) -> dict:
    """One slot's result file, whatever process hosted it (its keys in this order)."""
    model = loaded.model
    return {
        "slot": slot.to_dict(),
        "device": slot.label,
        "utilization": [],
        "cpu_times": schedule.cpu_times,
        # schedule, release_ns, met_ns, stop_ns, calls (and an open loop's arrivals_ns)
        **schedule.record_fields(),
        "load_s": loaded.load_s,
        "warmup_s": warmup_s,
        "memory": memory,
        "device_info": backend.describe(),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights": loaded.weights_info,
        "conversion": loaded.conversion,
        # The shape the roofline's bytes and FLOPs are computed from (analysis.bandwidth).
        "model_config": {key: getattr(model.config, key, None) for key in SHAPE_KEYS},
    }


def start_sampling(read, interval, stop_sampling: threading.Event) -> list:
    """In-process utilisation samples of ``read`` every ``interval`` s (none without one),
    started before the barrier so that nothing new begins at release; samples from before the
    window are dropped by the analysis like any other."""
    samples: list[tuple[int, float]] = []
    if interval and read is not None:
        threading.Thread(
            target=sample_utilization,
            args=(read, interval, stop_sampling, samples),
            daemon=True,
        ).start()
    return samples
