"""One benchmark worker: one model on one slot, in its own fresh interpreter.

Started by the runner as ``python -m dualbench.measure.worker SPEC.json`` with the slot's
pinning environment already set (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES /
OMP_NUM_THREADS must exist before torch initialises, which is why workers are fresh
interpreters and never forks).

Between loading and its result it speaks the runner's protocol (dualbench.measure.protocol)
and follows a schedule: it keeps loading the device until every slot has met its criteria, so
the co-located window is as long as the slowest slot needs. The slot's settings pick it:
``arrival`` null or absent is the closed loop (dualbench.measure.closed_loop, back-to-back
calls), an ``arrival`` mapping the open loop (dualbench.measure.open_loop, seeded arrivals at
rate_rps).

A worker never outlives its runner (dualbench.measure.lifetime): it holds a device, and a
benchmark nobody waits for only skews whatever runs next on that device.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from dualbench.measure.closed_loop import closed_loop
from dualbench.measure.lifetime import PARENT_PID_ENV, die_with_parent
from dualbench.measure.open_loop import open_loop
from dualbench.measure.protocol import Event, WorkerChannel

# Fault injection for the pipeline's own failure tests: DUALBENCH_FAULT="<slot>:<kind>" with kind
# crash | hang | oom, applied after loading. Never set in normal use.
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


def run_worker(spec: dict, channel: WorkerChannel) -> dict:
    from dualbench.backends import Slot, backend_class

    slot = Slot.from_dict(spec["slot"])
    backend = backend_class(spec["backend"])()
    backend.pin(slot)

    import torch
    from transformers import AutoTokenizer

    from dualbench.measure.engine import generation_config, load_model, timed_generate
    from dualbench.workload import prompt_pool

    settings = spec["settings"]
    model_dir = spec["model_dir"]
    conversion = json.loads((Path(model_dir) / "conversion.json").read_text())
    device = backend.torch_device()

    load_started = time.perf_counter()
    model, weights_info = load_model(
        model_dir, device, backend.kind, spec.get("int4_kernel", "native")
    )
    backend.synchronize()
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
    mask = torch.ones_like(pool[0])
    eos = model.config.eos_token_id
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    gen_config = generation_config(n_new, pad, eos)

    warmup_started = time.perf_counter()
    for i in range(settings["warmup_requests"]):
        timed_generate(model, pool[i % len(pool)], mask, gen_config, backend.synchronize)
    warmup_s = time.perf_counter() - warmup_started

    # Started before the barrier so that nothing new begins at release; samples from before
    # the window are dropped by the analysis like any other.
    utilization: list[tuple[int, float]] = []
    stop_sampling = threading.Event()
    interval = spec.get("telemetry_interval_s")
    if interval and backend.in_process_utilization:
        threading.Thread(
            target=sample_utilization,
            args=(backend.utilization, interval, stop_sampling, utilization),
            daemon=True,
        ).start()
    channel.send(Event.READY, load_s=load_s, warmup_s=warmup_s)

    def generate(i: int) -> dict:
        return timed_generate(model, pool[i % len(pool)], mask, gen_config, backend.synchronize)

    if settings.get("arrival"):
        schedule = open_loop(
            generate,
            channel,
            spec["duration_s"],
            batch,
            settings["arrival"],
            spec["seed"],
            slot.name,
        )
    else:
        schedule = closed_loop(
            generate, channel, spec["duration_s"], batch, settings["min_requests"]
        )
    stop_sampling.set()
    return {
        "slot": slot.to_dict(),
        "device": slot.label,
        "utilization": utilization,
        "cpu_times": schedule.cpu_times,
        # schedule, release_ns, met_ns, stop_ns, calls (and an open loop's arrivals_ns)
        **schedule.record_fields(),
        "load_s": load_s,
        "warmup_s": warmup_s,
        "memory": backend.memory(),
        "device_info": backend.describe(),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights": weights_info,
        "conversion": conversion,
        # The shape the roofline's bytes and FLOPs are computed from (analysis.bandwidth).
        "model_config": {key: getattr(model.config, key, None) for key in SHAPE_KEYS},
    }


def main(argv: list[str] | None = None) -> int:
    # First, before anything that takes time: until this runs, a runner's death goes unnoticed.
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    channel = WorkerChannel()
    try:
        result = run_worker(spec, channel)
    except BaseException as exc:  # report every failure, then exit non-zero
        status = "error"
        try:
            from dualbench.backends import backend_class

            if backend_class(spec["backend"])().is_oom(exc):
                status = "oom"
        except Exception:
            pass
        message = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        traceback.print_exc()
        channel.send(Event.ERROR, status=status, message=message[:500])
        return 1
    Path(spec["result_path"]).write_text(json.dumps(result))
    channel.send(Event.DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
