"""One calibration probe: a fresh interpreter on one slot that times device copies and matmuls.

Started by dualbench.measure.calibration as ``python -m dualbench.measure.calibration_probe
SPEC.json`` with the slot's pinning environment already set, for the same reason as a
benchmark worker: OMP_NUM_THREADS / CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES must exist
before torch initialises, so a probe is never a fork of a process that has torch loaded.

Two modes (``spec["mode"]``):
- ``alone``: the slot by itself. Times ``repeats`` copies and ``repeats`` square matmuls, each
  after one untimed warm-up, synchronising the device around each one, and writes the
  durations; the parent turns them into rates.
- ``contended``: one probe per slot at once. Allocates and warms up, says ``ready``, waits for
  ``go`` (every probe is released together), then copies back to back recording each copy's
  (start, end) until ``stop``, and reports each one (``progress``) as it ends, so the parent
  can stop every probe once each slot has enough copies inside the common window.

Timestamps are ``time.perf_counter_ns``, CLOCK_MONOTONIC on Linux: one clock for the whole
machine, so the parent can lay the probes' copies side by side and keep the common window.

The protocol is the runner's (dualbench.measure.protocol); the result goes to
``spec["result_path"]`` before ``done``. A probe never outlives its parent (die_with_parent,
first thing in main): it loads a device, and a copy loop nobody waits for only skews whatever
is measured next.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from dualbench.measure.lifetime import PARENT_PID_ENV, die_with_parent
from dualbench.measure.protocol import Event, WorkerChannel


def timed(op, synchronize) -> int:
    """Nanoseconds of one ``op()``, the device drained before and after, so that the host
    clock brackets exactly this operation's device work (a no-op sync on the CPU)."""
    synchronize()
    start = time.perf_counter_ns()
    op()
    synchronize()
    return time.perf_counter_ns() - start


def copy_buffers(torch, device, copy_bytes: int):
    """(src, dst) uint8 buffers of ``copy_bytes`` each, both written once: an untouched CPU
    page reads as the kernel's shared zero page, which would sit in cache and flatter the
    bandwidth, and a first touch would time page faults instead of memory."""
    src = torch.full((copy_bytes,), 1, dtype=torch.uint8, device=device)
    dst = torch.zeros(copy_bytes, dtype=torch.uint8, device=device)
    return src, dst


def time_copies(torch, device, copy_bytes: int, repeats: int, sync) -> list[int]:
    src, dst = copy_buffers(torch, device, copy_bytes)
    dst.copy_(src)  # warm-up
    return [timed(lambda: dst.copy_(src), sync) for _ in range(repeats)]


def measure_alone(spec: dict, backend, torch) -> dict:
    device = backend.torch_device()
    sync = backend.synchronize
    repeats = spec["repeats"]
    # The copy buffers are freed on return: the matmul's need the room on a small device.
    copy_ns = time_copies(torch, device, spec["copy_bytes"], repeats, sync)

    dtype = getattr(torch, spec["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype {spec['dtype']!r} is not a torch dtype")
    n = spec["matmul_n"]
    torch.manual_seed(0)
    # Random, not constant, inputs: zeros or ones can take shortcuts in some kernels.
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    c = torch.empty(n, n, dtype=dtype, device=device)
    # out=: a @ b without an allocation inside the timed region.
    torch.mm(a, b, out=c)  # warm-up (kernel selection, workspace allocation)
    matmul_ns = [timed(lambda: torch.mm(a, b, out=c), sync) for _ in range(repeats)]
    return {
        "copy_ns": copy_ns,
        "matmul_ns": matmul_ns,
        "matmul_dtype": str(c.dtype).removeprefix("torch."),
    }


def measure_contended(spec: dict, backend, torch, channel: WorkerChannel) -> dict:
    device = backend.torch_device()
    sync = backend.synchronize
    src, dst = copy_buffers(torch, device, spec["copy_bytes"])
    dst.copy_(src)  # warm-up, before the barrier: nothing but copies inside the window
    sync()
    channel.send(Event.READY)
    channel.wait_go()
    copies: list[tuple[int, int]] = []
    while not channel.stop.is_set():
        start = time.perf_counter_ns()
        dst.copy_(src)
        sync()
        copies.append((start, time.perf_counter_ns()))
        # Between copies, outside the timed span: a line to a pipe the parent drains at once.
        channel.send(Event.PROGRESS, start=start, end=copies[-1][1])
    return {"copies": copies}


def run_probe(spec: dict, channel: WorkerChannel) -> dict:
    from dualbench.backends import Slot, backend_class

    slot = Slot.from_dict(spec["slot"])
    backend = backend_class(spec["backend"])()
    backend.pin(slot)

    import torch

    if spec["mode"] == "alone":
        result = measure_alone(spec, backend, torch)
        result["device_info"] = backend.describe()
    else:
        result = measure_contended(spec, backend, torch, channel)
    return {"slot": slot.to_dict(), "device": slot.label, **result}


def main(argv: list[str] | None = None) -> int:
    # First, before torch's import: until this runs, a parent's death goes unnoticed.
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    channel = WorkerChannel()
    try:
        result = run_probe(spec, channel)
    except BaseException as exc:  # report every failure in one line, the traceback to the log
        text = str(exc).strip()
        message = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        traceback.print_exc()
        channel.send(Event.ERROR, message=message[:500])
        return 1
    Path(spec["result_path"]).write_text(json.dumps(result))
    channel.send(Event.DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
