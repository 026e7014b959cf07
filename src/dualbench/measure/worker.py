"""One benchmark worker: one model on one slot, in its own fresh interpreter, loaded and warmed
up once and then serving the trials of its session (dualbench.measure.session) one by one.

Started by the runner as ``python -m dualbench.measure.worker SPEC.json`` with the slot's
pinning environment already set (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES /
OMP_NUM_THREADS must exist before torch initialises, which is why workers are fresh
interpreters and never forks).

In each trial it speaks the runner's protocol (dualbench.measure.protocol) and follows a
schedule: it keeps loading the device until every slot has met its criteria, so
the co-located window is as long as the slowest slot needs. The slot's settings pick it:
``arrival`` null or absent is the closed loop (dualbench.measure.closed_loop, back-to-back
calls), an ``arrival`` mapping the open loop (dualbench.measure.open_loop, seeded arrivals at
rate_rps). The trial's schedule may add to that: a ``lockstep`` entry in the trial puts the
worker in a ring of turns whose ends come over its control socket (dualbench.measure.lockstep);
a spec with ``members`` makes this process the single-thread schedule's host of several slots
(``run_group``, dualbench.measure.single_thread). Both are closed-loop only.

A worker never outlives its runner (dualbench.measure.lifetime): it holds a device, and a
benchmark nobody waits for only skews whatever runs next on that device.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from pathlib import Path

from dualbench.measure.closed_loop import closed_loop
from dualbench.measure.lifetime import PARENT_PID_ENV, die_with_parent
from dualbench.measure.lockstep import RingEnds, TokenRing
from dualbench.measure.open_loop import open_loop
from dualbench.measure.protocol import Event, WorkerChannel
from dualbench.measure.slot_model import (
    inject_window_fault,
    load_slot,
    refuse_open_loop,
    slot_result,
    start_sampling,
)


def worker_backend(kind: str):
    """The worker's backend. An NPU backend gets npu-smi's AI Core count as its fallback
    source of the chip's core counts (for core limits): the backend may not import telemetry,
    a later stage, so the worker hands it in."""
    from dualbench.backends import backend_class

    backend = backend_class(kind)()
    if kind == "npu":
        from dualbench.telemetry.npusmi import aicore_count

        backend.aicore_count_reader = aicore_count
    return backend


def control_socket(spec: dict):
    """The worker's end of its control socket (a lockstep trial's ring ends come over it as
    file descriptors), or None where its session has no lockstep layout."""
    import socket

    fd = spec.get("control_fd")
    return None if fd is None else socket.socket(fileno=fd)


def trial_ring(trial: dict, control) -> TokenRing | None:
    """A lockstep trial's end of the ring: its two fds, sent by the runner over the control
    socket just before the trial command (a ring per trial: one that a trial's stop broke
    cannot serve the next)."""
    import socket

    if "lockstep" not in trial:
        return None
    _, fds, _, _ = socket.recv_fds(control, 1, 2)
    read_fd, write_fd = fds
    place = trial["lockstep"]
    return TokenRing(RingEnds(read_fd, write_fd, place["position"], place["size"]))


def same_workload(loaded: dict, trial: dict, slot: str) -> None:
    """A trial may change a slot's arrivals, never what its model was loaded and warmed for
    (its prompt pool's shape)."""
    keys = ("batch_size", "prompt_tokens", "new_tokens")
    if any(loaded[k] != trial[k] for k in keys):
        raise ValueError(f"slot {slot}: a trial's workload differs from the one it was loaded for")


def run_worker(spec: dict, channel: WorkerChannel) -> None:
    """One slot's persistent worker: load and warm up once, then serve trials until quit."""
    from dualbench.backends import Slot

    slot = Slot.from_dict(spec["slot"])
    settings = spec["settings"]
    backend = worker_backend(spec["backend"])
    backend.pin(slot)
    control = control_socket(spec)

    loaded = load_slot(
        spec,
        slot,
        settings,
        spec["model_dir"],
        backend,
        backend.torch_device(),
        backend.synchronize,
    )
    warmup_s = loaded.warm_up(settings["warmup_requests"], backend.synchronize)
    channel.send(Event.LOADED, load_s=loaded.load_s, warmup_s=warmup_s)
    while (trial := channel.next_trial()) is not None:
        result = run_trial(trial, slot, loaded, warmup_s, backend, channel, control)
        write_result(trial["result_path"], result)
        channel.send(Event.DONE)


def run_trial(trial: dict, slot, loaded, warmup_s, backend, channel, control) -> dict:
    """One trial of a one-slot worker: armed, released, its schedule to the stop."""
    settings = trial["settings"]
    same_workload(loaded.settings, settings, slot.name)
    ring = trial_ring(trial, control)
    if ring is not None:
        refuse_open_loop(settings, slot.name, "lockstep")
    stop_sampling = threading.Event()
    utilization = start_sampling(
        backend.utilization if backend.in_process_utilization else None,
        trial.get("telemetry_interval_s"),
        stop_sampling,
    )
    channel.send(Event.READY)

    def generate(i: int) -> dict:
        inject_window_fault(slot.name, i)
        return loaded.generate(i, backend.synchronize, ring, channel.stop)

    batch = settings["batch_size"]
    if settings.get("arrival"):
        schedule = open_loop(
            generate,
            channel,
            trial["duration_s"],
            batch,
            settings["arrival"],
            trial["seed"],
            slot.name,
        )
    else:
        schedule = closed_loop(
            generate, channel, trial["duration_s"], batch, settings["min_requests"]
        )
    if ring is not None:
        # At once, not after our result is written: the neighbours run free from here.
        ring.close()
    stop_sampling.set()
    result = slot_result(slot, loaded, schedule, warmup_s, backend, backend.memory())
    result["utilization"] = utilization
    if ring is not None:
        result["lockstep"] = ring.describe()
    return result


def run_group(spec: dict, channel: WorkerChannel) -> None:
    """The single-thread schedule's one process for every slot of ``spec["members"]``
    (dualbench.measure.single_thread): pinned to all of their devices (or cores) at once, one
    model per slot on its own device, one stream each where the device has streams. Loads and
    warms up once, then serves trials until quit; each trial writes one result per slot, shaped
    as a co-located worker's, to the paths the trial names."""
    from dualbench.backends import Slot
    from dualbench.measure.single_thread import single_thread_rounds

    members = spec["members"]
    slots = [Slot.from_dict(m["slot"]) for m in members]
    for member, slot in zip(members, slots, strict=True):
        refuse_open_loop(member["settings"], slot.name, "single_thread_streams")
    backend = worker_backend(spec["backend"])
    backend.pin_group(slots)

    devices = {slot.name: backend.group_device(slots, slot) for slot in slots}
    syncs = {name: backend.synchronizer(device) for name, device in devices.items()}
    loaded = {
        slot.name: load_slot(
            spec, slot, m["settings"], m["model_dir"], backend, devices[slot.name],
            syncs[slot.name],
        )
        for m, slot in zip(members, slots, strict=True)
    }  # fmt: skip
    warmup_s = {
        slot.name: loaded[slot.name].warm_up(m["settings"]["warmup_requests"], syncs[slot.name])
        for m, slot in zip(members, slots, strict=True)
    }
    streams = {name: backend.new_stream(device) for name, device in devices.items()}
    distinct = list(dict.fromkeys(devices.values()))
    channel.send(
        Event.LOADED,
        load_s=sum(m.load_s for m in loaded.values()),
        warmup_s=sum(warmup_s.values()),
    )

    def generate_for(name: str):
        def generate(i: int) -> dict:
            inject_window_fault(name, i)
            with backend.on_stream(streams[name]):
                return loaded[name].generate(i, syncs[name], cut=channel.stop)

        return generate

    def synchronize_all() -> None:
        for device in distinct:
            backend.synchronizer(device)()

    while (trial := channel.next_trial()) is not None:
        settings = trial["settings"]
        for slot in slots:
            same_workload(loaded[slot.name].settings, settings[slot.name], slot.name)
        stop_sampling = threading.Event()
        utilization = {
            device: start_sampling(
                backend.utilization_reader(device) if backend.in_process_utilization else None,
                trial.get("telemetry_interval_s"),
                stop_sampling,
            )
            for device in distinct
        }
        channel.send(Event.READY)
        schedules = single_thread_rounds(
            {slot.name: generate_for(slot.name) for slot in slots},
            synchronize_all,
            channel,
            trial["duration_s"],
            {name: (s["batch_size"], s["min_requests"]) for name, s in settings.items()},
        )
        stop_sampling.set()
        group = {
            "process_slots": [slot.name for slot in slots],
            "streams": any(stream is not None for stream in streams.values()),
        }
        for slot in slots:
            device = devices[slot.name]
            result = slot_result(
                slot,
                loaded[slot.name],
                schedules[slot.name],
                warmup_s[slot.name],
                backend,
                backend.device_memory(device),
            )
            # Slots on one device share its samples, as co-located workers on it each do.
            result["utilization"] = list(utilization[device])
            result["single_thread"] = group
            write_result(trial["result_paths"][slot.name], result)
        channel.send(Event.DONE)


def write_result(path: str, result: dict) -> None:
    """A trial's result file, whole or not at all (the runner reads it once ``done`` came)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    # First, before anything that takes time: until this runs, a runner's death goes unnoticed.
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    channel = WorkerChannel()
    try:
        if "members" in spec:
            run_group(spec, channel)
        else:
            run_worker(spec, channel)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
