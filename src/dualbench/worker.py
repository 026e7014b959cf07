"""One benchmark worker: one model on one slot, in its own fresh interpreter.

Started by the runner as ``python -m dualbench.worker SPEC.json`` with the slot's pinning
environment already set (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES / OMP_NUM_THREADS must
exist before torch initialises, which is why workers are fresh interpreters and never forks).

Protocol with the runner, one JSON object per line: the worker writes ``ready`` (loaded and
warmed up), ``met`` (its own stop criteria reached), ``done`` or ``error`` on the protocol
channel (the process's original stdout; library chatter is redirected to stderr, the log); it
reads ``go`` (the barrier release: the window starts) and ``stop`` (every slot has met its
criteria) on stdin. A slot keeps loading the device until every slot has met its criteria, so
the co-located window is as long as the slowest slot needs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

# Fault injection for the pipeline's own failure tests: DUALBENCH_FAULT="<slot>:<kind>" with kind
# crash | hang | oom, applied after loading. Never set in normal use.
FAULT_ENV = "DUALBENCH_FAULT"


class Protocol:
    """The line channel to the runner."""

    def __init__(self):
        # Keep the real stdout for the protocol and point fd 1 at stderr, so nothing a library
        # prints can corrupt a protocol line.
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.stop = threading.Event()
        self._go = threading.Event()
        threading.Thread(target=self._read_commands, daemon=True).start()

    def _read_commands(self) -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "go":
                self._go.set()
            elif command == "stop":
                self.stop.set()
        # The runner went away: stop rather than run on unobserved.
        self._go.set()
        self.stop.set()

    def send(self, event: str, **fields) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()

    def wait_go(self) -> None:
        self._go.wait()


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


def criteria_met(calls: int, batch_size: int, min_requests: int, now_ns: int, deadline_ns: int):
    """A slot has been measured enough once duration_s has passed and it has completed
    min_requests requests; a call carries batch_size requests."""
    return now_ns >= deadline_ns and calls * batch_size >= min_requests


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


def run_worker(spec: dict, proto: Protocol) -> dict:
    from dualbench.backends import Slot, backend_class

    slot = Slot.from_dict(spec["slot"])
    backend = backend_class(spec["backend"])()
    backend.pin(slot)

    import torch
    from transformers import AutoTokenizer

    from dualbench.engine import generation_config, load_model, timed_generate
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
    proto.send("ready", load_s=load_s, warmup_s=warmup_s)
    proto.wait_go()
    release_ns = time.perf_counter_ns()
    deadline_ns = release_ns + int(spec["duration_s"] * 1e9)
    calls, met_ns = [], None
    # The worker's CPU seconds at release and after every call: the parent samples them too,
    # but cannot read them after the worker exits, and the window ends at a last token, just
    # before one does. process_time() is a vDSO clock read: nothing next to a generate call.
    cpu_times = [(release_ns, time.process_time())]
    while not proto.stop.is_set():
        calls.append(
            timed_generate(
                model, pool[len(calls) % len(pool)], mask, gen_config, backend.synchronize
            )
        )
        now = time.perf_counter_ns()
        cpu_times.append((now, time.process_time()))
        if met_ns is None and criteria_met(
            len(calls), batch, settings["min_requests"], now, deadline_ns
        ):
            met_ns = now
            proto.send("met")
    stop_sampling.set()
    return {
        "slot": slot.to_dict(),
        "device": slot.label,
        "utilization": utilization,
        "cpu_times": cpu_times,
        "release_ns": release_ns,
        "met_ns": met_ns,
        "calls": calls,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "memory": backend.memory(),
        "device_info": backend.describe(),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights": weights_info,
        "conversion": conversion,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    proto = Protocol()
    try:
        result = run_worker(spec, proto)
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
        proto.send("error", status=status, message=message[:500])
        return 1
    Path(spec["result_path"]).write_text(json.dumps(result))
    proto.send("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
