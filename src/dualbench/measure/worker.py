"""One benchmark worker: one model on one slot, in its own fresh interpreter.

Started by the runner as ``python -m dualbench.measure.worker SPEC.json`` with the slot's pinning
environment already set (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES / OMP_NUM_THREADS must
exist before torch initialises, which is why workers are fresh interpreters and never forks).

Protocol with the runner, one JSON object per line (names in Event and Command): the worker
writes ``ready`` (loaded and warmed up), ``progress`` (after every call in the window), ``met``
(its own stop criteria reached), ``done`` or ``error`` on the protocol channel (the process's
original stdout; library chatter is redirected to stderr, the log); it reads ``go`` (the barrier
release: the window starts) and ``stop`` (every slot has met its criteria) on stdin. A slot keeps
loading the device until every slot has met its criteria, so the co-located window is as long as
the slowest slot needs.

A worker never outlives its runner (see die_with_parent): it holds a device, and a benchmark
nobody waits for only skews whatever runs next on that device.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from enum import StrEnum
from pathlib import Path

# Fault injection for the pipeline's own failure tests: DUALBENCH_FAULT="<slot>:<kind>" with kind
# crash | hang | oom, applied after loading. Never set in normal use.
FAULT_ENV = "DUALBENCH_FAULT"
# The runner's pid, set by the runner in the worker's environment (see die_with_parent).
PARENT_PID_ENV = "DUALBENCH_PARENT_PID"
# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
# How often the fallback watchdog (no PR_SET_PDEATHSIG off Linux) looks at the parent pid.
PARENT_POLL_S = 0.5
# Exit status of a worker that found its runner gone.
ORPHANED_EXIT = 70


class Event(StrEnum):
    """Worker to runner: the ``event`` field of each protocol line."""

    READY = "ready"
    PROGRESS = "progress"
    MET = "met"
    DONE = "done"
    ERROR = "error"


class Command(StrEnum):
    """Runner to worker: one per line on the worker's stdin."""

    GO = "go"
    STOP = "stop"


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
            if command == Command.GO:
                self._go.set()
            elif command == Command.STOP:
                self.stop.set()
        # The runner went away: stop rather than run on unobserved.
        self._go.set()
        self.stop.set()

    def send(self, event: str, **fields) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()

    def wait_go(self) -> None:
        self._go.wait()


def die_with_parent(parent_pid: int | None) -> None:
    """Tie this process's life to the runner's: when the runner dies, by SIGKILL included, the
    worker dies at once, in the middle of a request, instead of computing on for nobody.

    Linux: the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG). It fires when the
    *thread* that forked us exits, which is why the runner spawns workers from the thread that
    waits for them. The setting only covers a death after this call, so the parent pid is
    checked afterwards: a runner that died during our interpreter's start-up left us
    re-parented already. Elsewhere a watchdog thread polls the parent pid instead.
    """
    linux = sys.platform.startswith("linux")
    if linux:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if parent_pid is None:
        return  # started by hand (debugging): no runner to outlive
    exit_if_orphaned(parent_pid)
    if not linux:
        threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()


def exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        # os._exit: no cleanup that could wait on a device or write a result nobody reads.
        os.write(2, f"dualbench worker: runner {parent_pid} is gone, exiting\n".encode())
        os._exit(ORPHANED_EXIT)


def watch_parent(parent_pid: int, interval_s: float = PARENT_POLL_S) -> None:
    """Exit the process once the parent pid changes (the fallback for PR_SET_PDEATHSIG)."""
    while True:
        exit_if_orphaned(parent_pid)
        time.sleep(interval_s)


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


def remaining_s(
    elapsed_s: float, duration_s: float, calls: int, batch_size: int, min_requests: int
) -> float:
    """Seconds until a slot meets its criteria (criteria_met), estimated after ``calls`` calls
    in ``elapsed_s`` seconds of the window: the larger of the time left to duration_s and the
    calls still owed to min_requests at the mean call time so far."""
    owed_calls = math.ceil(max(0, min_requests - calls * batch_size) / batch_size)
    mean_call_s = elapsed_s / calls if calls else 0.0
    return max(0.0, duration_s - elapsed_s, owed_calls * mean_call_s)


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
    proto.send(Event.READY, load_s=load_s, warmup_s=warmup_s)
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
            proto.send(Event.MET)
        elapsed_s = (now - release_ns) / 1e9
        left_s = remaining_s(
            elapsed_s, spec["duration_s"], len(calls), batch, settings["min_requests"]
        )
        proto.send(
            Event.PROGRESS,
            calls=len(calls),
            requests=len(calls) * batch,
            elapsed_s=round(elapsed_s, 3),
            remaining_s=round(left_s, 3),
            met=met_ns is not None,
        )
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
    # First, before anything that takes time: until this runs, a runner's death goes unnoticed.
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
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
        proto.send(Event.ERROR, status=status, message=message[:500])
        return 1
    Path(spec["result_path"]).write_text(json.dumps(result))
    proto.send(Event.DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
