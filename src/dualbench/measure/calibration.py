"""Calibration of a slot: the peaks a model's achieved bandwidth and throughput are read
against, measured on the slot itself rather than taken from a data sheet.

Three figures per slot and compute dtype:
- the copy bandwidth alone: ``dst.copy_(src)`` of ``copy_bytes`` bytes, counted as 2 x
  copy_bytes per copy (one read and one write of every byte, the STREAM "copy" convention),
  so it compares with a decode step's weight reads in the same unit, bytes moved per second;
- the copy bandwidth while every slot of the config copies at once: what the slot gets when
  its neighbour also streams memory (two CPU slots share the memory controllers, two slots on
  one accelerator share its HBM), and the sum over the slots, the machine's shared ceiling;
- the square-matmul throughput (2n^3 FLOP per ``a @ b``) in the compute dtype.

Each step runs in fresh probe processes (dualbench.measure.calibration_probe), pinned exactly
as the benchmark's workers are, so the calibration sees the slot the benchmark uses. This
module is their parent: it never measures, it starts, releases, stops and reads the probes,
and it kills them whatever happens, as dualbench.measure.runner does its workers.

The copy is sized beyond the caches: on the CPU 4 x the total last-level cache (at least
256 MiB), so the copy streams from memory; on accelerators 1 GiB, far beyond any L2.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from dualbench.backends import resolve
from dualbench.backends.base import parse_cores
from dualbench.errors import DeviceError
from dualbench.hardware import cpu_facts
from dualbench.measure import exclusivity
from dualbench.measure.lifetime import PARENT_PID_ENV
from dualbench.measure.protocol import WORKER_EXITED, Command, Event, forward_events, send_command
from dualbench.measure.runner import write_atomically

PROBE_MODULE = "dualbench.measure.calibration_probe"
MIB = 1 << 20
CPU_MIN_COPY_BYTES = 256 * MIB
CPU_COPY_LLC_FACTOR = 4
ACCELERATOR_COPY_BYTES = 1 << 30
CPU_MATMUL_N = 2048
ACCELERATOR_MATMUL_N = 8192
SYSFS_CPU = Path("/sys/devices/system/cpu")
# A bound on a hung probe (start-up to result, or to ready), not an estimate: a CPU fp16
# matmul that the CPU only emulates can take a minute, a first NPU kernel compile longer.
PROBE_LIMIT_S = 600.0
# The contended window's limit: generous against the alone copy time, since N slots sharing
# one memory can each copy N times slower; never below the floor, for very fast copies.
CONTENDED_LIMIT_FLOOR_S = 60.0
CONTENDED_LIMIT_FACTOR = 20.0
# How long probes get to hand in their result after "stop" (one copy in flight, then a file).
STOP_GRACE_S = 60.0


# --- pure parts -------------------------------------------------------------------------------


def parse_cache_size(text: str) -> int:
    """sysfs cache ``size`` -> bytes: '32768K' -> 33554432 (the kernel writes K; M and G and
    a bare number are accepted too)."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def llc_bytes(root: Path = SYSFS_CPU) -> int | None:
    """The total size of the last-level cache: the distinct cache instances of the highest
    level under ``root``/cpu*/cache/index*/, summed. Every CPU lists the caches it uses, so an
    L3 shared by 8 CPUs appears 8 times; an instance is its (level, type, shared_cpu_list),
    counted once. Instruction caches are not where data streams. None when nothing is
    readable (not Linux, a container hiding sysfs)."""
    instances: dict[tuple[int, str, tuple[int, ...]], int] = {}
    for index in sorted(Path(root).glob("cpu[0-9]*/cache/index[0-9]*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level = int((index / "level").read_text())
            cpus = parse_cores((index / "shared_cpu_list").read_text().strip())
            size = parse_cache_size((index / "size").read_text())
        except (OSError, ValueError, DeviceError):
            continue  # a half-populated entry: skip it rather than guess
        instances[(level, kind, cpus)] = size
    if not instances:
        return None
    top = max(level for level, _, _ in instances)
    return sum(size for (level, _, _), size in instances.items() if level == top)


def default_copy_bytes(kind: str, llc: int | None) -> int:
    if kind != "cpu":
        return ACCELERATOR_COPY_BYTES
    return max(CPU_COPY_LLC_FACTOR * (llc or 0), CPU_MIN_COPY_BYTES)


def median(samples) -> float | None:
    """numpy's median, or None for no samples (JSON has no NaN)."""
    return float(np.median(np.asarray(samples, dtype=float))) if len(samples) else None


def spread(samples) -> float | None:
    """(p75 - p25) / median: how far the samples scatter, relative and robust to one outlier;
    None without samples or with a zero median."""
    mid = median(samples)
    if not mid:
        return None
    p25, p75 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float((p75 - p25) / mid)


def in_common_window(copies: dict[str, list]) -> dict[str, list[tuple[int, int]]]:
    """Each slot's (start_ns, end_ns) copies that lie entirely inside the common window
    [latest first-copy start, earliest last-copy end]: the span in which every slot was
    copying, so each kept copy met the full contention. A slot without copies, or probes that
    never overlapped, leave every list empty."""
    if not copies or any(not c for c in copies.values()):
        return {name: [] for name in copies}
    lo = max(min(start for start, _ in c) for c in copies.values())
    hi = min(max(end for _, end in c) for c in copies.values())
    return {name: [(s, e) for s, e in c if s >= lo and e <= hi] for name, c in copies.items()}


def copy_rates(copy_bytes: int, durations_ns) -> list[float]:
    """Bytes/s of each copy: 2 x copy_bytes (read + write) over its duration."""
    return [2 * copy_bytes * 1e9 / d for d in durations_ns]


def matmul_rates(n: int, durations_ns) -> list[float]:
    """FLOP/s of each n x n matmul: 2n^3 (a multiply and an add per term) over its duration."""
    return [2 * n**3 * 1e9 / d for d in durations_ns]


# --- the probes -------------------------------------------------------------------------------


class ProbeGroup:
    """The probes of one step (alone, contended), read from one event queue; ``kill_all``
    ends every one. Probes must be started from the thread that waits for them:
    PR_SET_PDEATHSIG, their tie to us, fires when the thread that forked them exits
    (dualbench.measure.lifetime)."""

    def __init__(self, step: str, calibrated: str, backend, settings: dict, spec: dict, work_dir):
        self.step, self.calibrated, self.backend = step, calibrated, backend
        self.settings, self.allocator, self.work_dir = settings, spec["allocator"], work_dir
        # Every file is named by the calibration (slot, dtype), the step and the probe's slot,
        # so calibrations sharing a work directory never mix their files.
        self.stem = f"probe-{calibrated}-{settings['dtype']}-{step}"
        self.events: queue.Queue = queue.Queue()
        self.procs: dict[str, subprocess.Popen] = {}
        self.labels: dict[str, str] = {}
        self.done: set[str] = set()

    def path(self, name: str, suffix: str) -> Path:
        return (self.work_dir / f"{self.stem}-{name}{suffix}").resolve()

    def start(self, slot) -> None:
        result_path = self.path(slot.name, ".result.json")
        result_path.unlink(missing_ok=True)  # an earlier call's result never passes for ours
        probe_spec = {
            "backend": self.backend.kind,
            "slot": slot.to_dict(),
            "mode": self.step,
            **self.settings,
            "result_path": str(result_path),
        }
        spec_path = self.path(slot.name, ".json")  # absolute: ps shows which calibration
        spec_path.write_text(json.dumps(probe_spec, indent=2))
        env = self.backend.worker_env(slot, self.allocator)
        self.labels[slot.name] = slot.label
        log = open(self.path(slot.name, ".log"), "w")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", PROBE_MODULE, str(spec_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, **env, PARENT_PID_ENV: str(os.getpid())},
                text=True,
                # Its own session: a kill takes its children, and a terminal's Ctrl-C reaches
                # only us, who then kill it (the finally of calibrate).
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs[slot.name] = proc
        threading.Thread(
            target=forward_events, args=(proc.stdout, slot.name, self.events), daemon=True
        ).start()

    def fail(self, name: str, what: str) -> DeviceError:
        what = " ".join(what.split())  # one line, whatever the probe wrote
        return DeviceError(
            f"calibration of slot {self.calibrated}: the {self.step} probe on slot {name} "
            f"({self.labels[name]}) {what}; log: {self.path(name, '.log')}"
        )

    def exit_reason(self, name: str) -> str:
        code = self.procs[name].wait()
        if code < 0 and -code == signal.SIGKILL:
            return "was killed by SIGKILL (usually the kernel's out-of-memory killer)"
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code} without a result"

    def next_event(self, deadline: float) -> tuple[str, dict] | None:
        """The next (probe, event), or None at the deadline. A probe's error, or its exit
        before ``done``, raises DeviceError."""
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                name, event = self.events.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            got = event.get("event")
            if got == Event.ERROR:
                raise self.fail(name, f"failed: {event.get('message', '')}")
            if got == WORKER_EXITED and name not in self.done:
                raise self.fail(name, self.exit_reason(name))
            if got == Event.DONE:
                self.done.add(name)
            return name, event
        return None

    def wait_all(self, kind: Event, deadline: float) -> None:
        """Wait until every probe has sent ``kind``; a probe that has not by the deadline
        raises DeviceError (hung)."""
        arrived: set[str] = set()
        while len(arrived) < len(self.procs):
            got = self.next_event(deadline)
            if got is None:
                late = sorted(set(self.procs) - arrived)[0]
                raise self.fail(late, f"sent no '{kind}' before its time limit (hung?)")
            if got[1].get("event") == kind:
                arrived.add(got[0])

    def send_all(self, command: Command) -> None:
        for proc in self.procs.values():
            send_command(proc.stdin, command)

    def result(self, name: str) -> dict:
        return json.loads(self.path(name, ".result.json").read_text())

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def enough_in_window(group: ProbeGroup, order: list[str], repeats: int, deadline: float) -> bool:
    """Follow the probes' copies as they report them until every slot has ``repeats`` inside
    the common window of what was reported so far; False at the deadline.

    Why that suffices: after "stop" the first copies stay what they were and every slot's last
    copy can only end later, so the final window contains this one and keeps these copies,
    however the scheduler staggered the probes' starts (a count of copies would not)."""
    seen: dict[str, list] = {name: [] for name in order}
    while (got := group.next_event(deadline)) is not None:
        name, event = got
        if event.get("event") == Event.PROGRESS:
            seen[name].append((event["start"], event["end"]))
            if all(len(c) >= repeats for c in in_common_window(seen).values()):
                return True
    return False


# --- the calibration --------------------------------------------------------------------------


def calibrate(spec: dict, work_dir: Path) -> dict:
    """Calibrate slot ``spec["slot"]`` (spec from the config stage; see the module docstring)
    and return its record: every CALIBRATION_COLUMNS field plus the raw samples (bytes/s per
    copy, FLOP/s per matmul), the spec, the host CPU and the device as the probe saw it.

    ``work_dir`` receives the probes' specs, results and logs. A probe that fails, dies or
    hangs raises DeviceError naming the slot, what failed and the probe's log. Whatever ends
    the call, no probe outlives it.
    """
    started = time.monotonic()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    slot_devices = spec["slots"]
    if isinstance(slot_devices, dict) and set(slot_devices.values()) == {"auto"}:
        slot_devices = "auto"
    backend, slots = resolve(spec["device"], slot_devices, spec["names"])
    name = spec["slot"]
    if name not in slots:
        raise DeviceError(f"calibration: slot {name} is not one of the config's {sorted(slots)}")
    # The host's LLC sizes a CPU copy only; an accelerator's 1 GiB dwarfs any device L2.
    llc = llc_bytes() if backend.kind == "cpu" else None
    copy_bytes = spec["copy_bytes"] or default_copy_bytes(backend.kind, llc)
    matmul_n = spec["matmul_n"] or (CPU_MATMUL_N if backend.kind == "cpu" else ACCELERATOR_MATMUL_N)
    repeats = spec["repeats"]
    settings = {
        "dtype": spec["dtype"],
        "copy_bytes": copy_bytes,
        "matmul_n": matmul_n,
        "repeats": repeats,
    }
    notes = []
    if backend.kind == "cpu" and llc is None and not spec["copy_bytes"]:
        notes.append("last-level cache size unreadable; copy sized at the 256 MiB floor")

    # 1. The slot alone.
    alone = ProbeGroup("alone", name, backend, settings, spec, work_dir)
    try:
        alone.start(slots[name])
        alone.wait_all(Event.DONE, time.monotonic() + PROBE_LIMIT_S)
        alone_result = alone.result(name)
    finally:
        alone.kill_all()
    copy_alone = copy_rates(copy_bytes, alone_result["copy_ns"])
    matmul = matmul_rates(matmul_n, alone_result["matmul_ns"])

    # 2. Every slot copying at once, released together.
    order = [n for n in spec["names"] if n in slots] + [n for n in slots if n not in spec["names"]]
    contended = ProbeGroup("contended", name, backend, settings, spec, work_dir)
    try:
        for other in order:
            contended.start(slots[other])
        contended.wait_all(Event.READY, time.monotonic() + PROBE_LIMIT_S)
        released = time.monotonic()
        contended.send_all(Command.GO)
        copy_s = 2 * copy_bytes / median(copy_alone)
        limit = max(CONTENDED_LIMIT_FLOOR_S, CONTENDED_LIMIT_FACTOR * len(order) * repeats * copy_s)
        if not enough_in_window(contended, order, repeats, released + limit):
            notes.append(f"contended copies stopped by the {limit:.0f} s limit")
        contended.send_all(Command.STOP)
        contended.wait_all(Event.DONE, time.monotonic() + STOP_GRACE_S)
        copies = {o: [tuple(c) for c in contended.result(o)["copies"]] for o in order}
    finally:
        contended.kill_all()
    window = in_common_window(copies)
    samples = {o: copy_rates(copy_bytes, [e - s for s, e in window[o]]) for o in order}
    short = [f"{o} {len(window[o])}" for o in order if len(window[o]) < repeats]
    if short:
        notes.append(
            f"fewer contended copies in the common window than {repeats}: {', '.join(short)}"
        )
    medians = {o: median(v) for o, v in samples.items()}
    kept = [c for w in window.values() for c in w]
    return {
        "slot": name,
        "device": slots[name].label,
        "backend": backend.kind,
        "dtype": spec["dtype"],
        "copy_bytes": copy_bytes,
        "llc_bytes": llc,
        "copy_alone_bytes_s": median(copy_alone),
        "copy_alone_spread": spread(copy_alone),
        "copy_contended_bytes_s": medians[name],
        # The machine's shared ceiling; unknown if any slot has no copy in the window.
        "copy_contended_total_bytes_s": None if None in medians.values() else sum(medians.values()),
        "contended_slots": ",".join(order),
        "matmul_n": matmul_n,
        "matmul_flop_s": median(matmul),
        "matmul_spread": spread(matmul),
        "repeats": repeats,
        "note": "; ".join(notes),
        "copy_alone_samples": copy_alone,
        "copy_contended_samples": samples,
        "copy_contended_spread": {o: spread(v) for o, v in samples.items()},
        # Copies each slot made in all, inside the window or not, and the window's length.
        "contended_copies_total": {o: len(c) for o, c in copies.items()},
        "contended_window_s": (
            (max(e for _, e in kept) - min(s for s, _ in kept)) / 1e9 if kept else 0.0
        ),
        "matmul_samples": matmul,
        "slots": {o: slots[o].to_dict() for o in order},
        "spec": spec,
        "host_cpu": cpu_facts().to_dict(),
        "device_info": alone_result["device_info"],
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def calibrate_to_file(spec: dict, out_path: Path, work_dir: Path, policy=None) -> dict:
    """``calibrate`` with the record written to ``out_path`` whole or not at all: an existing
    file means a finished calibration to Snakemake and to every reader. First, the exclusivity
    check of every slot under ``policy`` (dualbench.measure.exclusivity; None: none): a busy
    machine under ``fail`` is not calibrated and the job ends with one line."""
    finding = exclusivity.check_calibration(spec, policy)
    record = {**calibrate(spec, work_dir), "exclusivity": finding}
    write_atomically(Path(out_path), json.dumps(record, indent=1))
    return record
