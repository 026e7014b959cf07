"""The parts of a run record that come from what its workers wrote: one slot's entry (its
result, with the samples it took in-process moved to the telemetry rows), the dtype warning,
and how long the idle baseline is sampled. Shared by every way a run is measured
(dualbench.measure.session)."""

from __future__ import annotations

from dualbench.hardware import cpu_facts
from dualbench.native_dtypes import emulation_warning
from dualbench.telemetry.sources import WORKER_CPU_SOURCE


def slot_entry(
    name: str, slot, spec: dict, result: dict | None, kind: str, telemetry: dict
) -> tuple[dict, list[tuple]]:
    """Slot ``name``'s entry of the record, and the telemetry rows taken from its ``result``
    (in-process utilisation; on a CPU the worker's own CPU clock, which the parent cannot read
    once the call that ends the window has returned)."""
    rows = []
    for t_ns, value in (result or {}).pop("utilization", None) or []:
        rows.append((t_ns, name, slot.label, "npu_util_pct", value, "torch.npu.utilization"))
    cpu_times = (result or {}).pop("cpu_times", None) or []
    if telemetry["enabled"] and kind == "cpu":
        rows += [
            (t_ns, name, slot.label, "cpu_time_s", value, WORKER_CPU_SOURCE)
            for t_ns, value in cpu_times
        ]
    entry = {
        "slot": slot.to_dict(),
        "device": slot.label,
        "model": spec["slots"][name]["model"],
        "settings": spec["slots"][name],
        "result": result,
    }
    return entry, rows


def idle_baseline_s(sources: list, settings: dict) -> float:
    """Seconds to sample the devices before any worker exists: their idle draw, which the
    net energy subtracts. Without a power or energy source there is nothing to subtract it
    from, and the wait would only lengthen every session (as on a CPU without readable RAPL)."""
    return settings["idle_s"] if any(s.measures_energy for s in sources) else 0.0


def dtype_warnings(kind: str, precision: str, slots: dict) -> list[str]:
    """The run's warning when its precision computes in a dtype the device only emulates
    (dualbench.native_dtypes): the CPU's flags are this host's, a GPU's capability is what its
    worker read."""
    capabilities = [
        tuple(cap)
        for s in slots.values()
        if (cap := ((s["result"] or {}).get("device_info") or {}).get("compute_capability"))
    ]
    warning = emulation_warning(
        kind, precision, cpu=cpu_facts(), capability=min(capabilities, default=None)
    )
    return [warning] if warning else []
