"""What a measuring session must hold for its trials: its processes (one per slot of its free
and lockstep trials, one hosting every slot of a single-thread trial), each slot's base
settings, and what the trials share (dualbench.measure.session starts them)."""

from __future__ import annotations

from pathlib import Path

from dualbench.config.vocabulary import DEFAULT_MODELS


def session_plan(specs: list[dict]) -> dict:
    """What a session must hold to run the trials ``specs`` (run specs of one scenario and
    precision): every slot's base settings (its arrivals removed: a trial sets them) and
    device, whether a single-thread process and lockstep rings are needed, and what the specs
    share (device, seed, telemetry, allocator, int4 kernel)."""
    first = specs[0]
    slots: dict[str, dict] = {}
    group: set[str] = set()
    solo: set[str] = set()  # the slots with a process of their own
    for spec in specs:
        for name, settings in spec["slots"].items():
            base = {k: v for k, v in settings.items() if k != "arrival"}
            slots.setdefault(name, base)
        if spec.get("schedule") == "single_thread":
            group |= set(spec["slots"])
        else:
            solo |= set(spec["slots"])
    plan = {
        "label": f"{first['scenario']}/{first['precision']}",
        "device": first["device"],
        "slots": dict(sorted(slots.items())),
        "slot_names": first.get("slot_names", DEFAULT_MODELS),
        "seed": first["seed"],
        "telemetry": first.get("telemetry", {"enabled": False}),
        "allocator": first.get("allocator", ""),
        "timeout_s": first["timeout_s"],
        "group": sorted(group),
        "solo": sorted(solo),
        "lockstep": any(s.get("schedule") == "lockstep" for s in specs),
    }
    if "int4_kernel" in first:
        plan["int4_kernel"] = first["int4_kernel"]
    return plan


def worker_launch(
    plan: dict, backend, slots: dict, members: list[str], model_dirs: dict, common: dict
) -> dict:
    """The spec and environment of the process hosting ``members`` (slot names): one slot's
    worker, or the single-thread host of several (``members`` in its spec). ``slots``: every
    slot of the session ({name: Slot}); ``common``: what every worker spec carries."""
    entries = [
        {
            "slot": slots[name].to_dict(),
            "settings": plan["slots"][name],
            "model_dir": str(Path(model_dirs[name]).resolve()),
        }
        for name in members
    ]
    if len(members) > 1:
        env = backend.group_env([slots[n] for n in members], plan["allocator"])
        return {"worker_spec": {**common, "members": entries}, "env": env}
    (entry,) = entries
    env = backend.worker_env(slots[members[0]], plan["allocator"])
    return {"worker_spec": {**common, **entry}, "env": env}
