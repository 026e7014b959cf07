"""A run's progress on stderr, one line per phase change and per finished call of a slot, so
that a long window shows in Snakemake's output as it happens (and in the run's log)."""

from __future__ import annotations

import sys


class RunLog:
    """The run's progress on stderr, one line each, prefixed with the run's name: Snakemake
    shows a script's stderr as it comes."""

    def __init__(self, spec: dict):
        self.prefix = f"dualbench run {spec['scenario']}/{spec['precision']}/{spec['layout']}"
        self.duration_s = spec["duration_s"]
        # An open-loop slot owes no request count: its arrivals decide it.
        self.min_requests = {
            name: None if s.get("arrival") else s["min_requests"]
            for name, s in spec["slots"].items()
        }

    def line(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)

    def progress(self, slot: str, event: dict, waiting_for: list[str]) -> None:
        self.line(progress_text(slot, event, self.min_requests[slot], waiting_for))

    def stopping(self, window_s: float) -> None:
        self.line(f"every slot met its criteria {window_s:.1f} s into the window; stopping")


def progress_text(slot: str, event: dict, min_requests: int | None, waiting_for: list[str]) -> str:
    """One slot's progress after a call (a worker's progress event). ``waiting_for``: the
    slots that have not met their criteria yet; ``min_requests`` None: an open-loop slot."""
    count = (
        f"{event['requests']} requests (open loop)"
        if min_requests is None
        else (f"{event['requests']}/{min_requests} requests")
    )
    done = f"slot {slot} {count}, {event['elapsed_s']:.1f} s into the window"
    if not event["met"]:
        left = event["remaining_s"]
        return f"{done}, {'<1' if left < 1 else f'~{left:.0f}'} s to go"
    others = [name for name in waiting_for if name != slot]
    if others:
        return f"{done}, criteria met, waiting for {_slots(others)}"
    return f"{done}, criteria met"


def _slots(names: list[str]) -> str:
    return ("slot " if len(names) == 1 else "slots ") + ", ".join(names)
