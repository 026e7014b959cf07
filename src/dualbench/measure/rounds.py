"""A measuring session's rounds: every trial of the session (config.session_spec) once per
round, in the round's seeded order, on warm processes (dualbench.measure.session), until the
session has enough rounds.

Randomised multiple interleaved trials (Abedi and Brecht, ICPE 2017): many short trials of
each alternative, interleaved in a random order on the same warm system, so that drift hits
every layout alike and the analysis pairs a round's alone and co-located trials
(dualbench.analysis.intervals). Each trial is a run: its record, with ``repeat`` = its round
and ``position`` = its place in the round, goes to ``<out>/r<round>/<trial>/run.json``, so
everything downstream reads a round as it read a repeat block.

How many rounds: a count, or ``auto``: after each round from ``min_rounds`` on, ``judge``
(the analysis' verdict-bearing answers over the rounds so far, injected by the workflow: the
measuring stage does not import the analysis) says whether every one is tight enough; from
round 2 on (one round has no interval) the session also stops before a round it expects to
end past ``max_s``. ``session.json`` records
why it stopped, the rounds, and the seconds inside and outside the trials' windows.

A contention sweep point's neighbour runs open-loop at a fraction of its solo capacity: its
requests per second in its latest alone trial of the session (``capacity``, injected likewise).
In round 1 its alone trial is moved before the first sweep point, so that there is one.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dualbench.config.params import SWEEP_PREFIX
from dualbench.config.round_order import trial_order
from dualbench.config.vocabulary import alone_layout
from dualbench.measure import exclusivity
from dualbench.measure.runner import write_atomically
from dualbench.measure.session import Session
from dualbench.measure.session_plan import session_plan

SESSION_FILE = "session.json"
# rounds: auto runs at least this many rounds, budget or not: one round has no interval.
FLOOR_ROUNDS = 2


def round_order(session: dict, round_no: int) -> list[str]:
    """The trials of round ``round_no`` in the order it runs them. In round 1 the sweep's
    neighbour runs alone before any loaded sweep point (its capacity sets their rates)."""
    order = trial_order(
        list(session["trials"]), session["seed"], session["scenario"], session["precision"],
        round_no,
    )  # fmt: skip
    loaded = [n for n in order if n.startswith(SWEEP_PREFIX) and trial_fraction(session, n) > 0]
    if round_no == 1 and loaded:
        neighbour = session["trials"][loaded[0]]["sweep"]["neighbour"]
        alone = alone_layout(neighbour)
        order.remove(alone)
        order.insert(order.index(loaded[0]), alone)
    return order


def trial_fraction(session: dict, name: str) -> float:
    return session["trials"][name]["sweep"]["fraction"]


def with_rate(spec: dict, capacity_rps: float | None, note: str) -> dict:
    """A sweep point's spec with the neighbour's rate set: fraction x capacity (the
    victim-alone point as it is). ``note``: where the capacity came from, or why none."""
    spec = copy.deepcopy(spec)
    sweep = spec["sweep"]
    sweep["capacity_rps"] = capacity_rps if capacity_rps is not None else float("nan")
    sweep["capacity_from"] = note
    sweep["offered_rps"] = sweep["fraction"] * sweep["capacity_rps"]
    if sweep["fraction"] > 0:
        spec["slots"][sweep["neighbour"]]["arrival"]["rate_rps"] = sweep["offered_rps"]
    return spec


def not_run_record(spec: dict, reason: str, finding: dict | None = None) -> dict:
    """The record of a trial that could not run: status error, no slots measured."""
    record = {"spec": spec, "status": "error", "error": reason, "slots": {}, "warnings": []}
    return {**record, "exclusivity": finding or exclusivity.check("", {}, None)}


def window_s(record: dict) -> float:
    """Seconds of a trial inside its window: from the release to the stop, the longest slot's
    (the span every slot was kept measuring for)."""
    spans = [
        (r["stop_ns"] - r["release_ns"]) / 1e9
        for s in record["slots"].values()
        if (r := s.get("result")) and r.get("stop_ns") and r.get("release_ns")
    ]
    return max(spans, default=0.0)


def run_session(
    session: dict,
    model_dirs: dict[str, str],
    out_dir,
    work_dir,
    policy: dict | None = None,
    judge: Callable[[list[dict]], dict] | None = None,
    capacity: Callable[[dict, str], tuple[float | None, str]] | None = None,
) -> dict:
    """Run ``session`` (config.session_spec) and return what session.json records.
    ``judge(records)`` -> {"met": bool, "answers": {name: half-width}} over every record so
    far (rounds: auto needs it); ``capacity(alone record, slot)`` -> (requests/s or None, why
    not) (a sweep needs it); ``policy``: the exclusivity policy (None: no check)."""
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    specs = list(session["trials"].values())
    # Before anything is written or loaded: under fail a busy session ends here, with one line.
    finding = exclusivity.check_runs(specs, policy)
    out_dir.mkdir(parents=True, exist_ok=True)
    slots = sorted({s for spec in specs for s in spec["slots"]})
    started = time.monotonic()
    records: list[dict] = []  # the layouts' trials (a sweep point is not a layout)
    inside_s = 0.0
    latest_alone: dict[str, dict] = {}
    verdict = {"met": False, "answers": {}}
    judged_round = 0  # the round the verdict is of
    stopped = "rounds done"
    round_s: list[float] = []
    with Session(session_plan(specs), {s: model_dirs[s] for s in slots}, work_dir) as warm:
        trials_started = time.monotonic()
        round_no = 0
        while True:
            round_no += 1
            round_started = time.monotonic()
            order = round_order(session, round_no)
            for position, name in enumerate(order, start=1):
                progress(session, round_no, position, order, name)
                spec = {**session["trials"][name], "repeat": round_no, "position": position}
                out = out_dir / f"r{round_no}" / name / "run.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                if "sweep" in spec:
                    neighbour = spec["sweep"]["neighbour"]
                    alone = latest_alone.get(neighbour)
                    rps, note = (
                        (None, "no alone trial yet")
                        if alone is None
                        else capacity(alone, neighbour)
                    )
                    if rps is not None:
                        note = f"its alone trial of round {alone['spec']['repeat']}"
                    spec = with_rate(spec, rps, note)
                    if rps is None and spec["sweep"]["fraction"] > 0:
                        record = not_run_record(
                            spec, f"not run: no solo capacity of {neighbour} ({note})", finding
                        )
                        write_atomically(out, json.dumps(record))
                        continue
                # The workers' result files go beside their logs, not into the results.
                results = work_dir / f"r{round_no}" / name
                record = warm.trial(spec, results, out.parent / "telemetry.csv", finding)
                record["session"] = {"round": round_no, "position": position}
                write_atomically(out, json.dumps(record))
                if "sweep" not in spec:
                    records.append(record)
                inside_s += window_s(record)
                if len(spec["slots"]) == 1 and "sweep" not in spec:
                    latest_alone[next(iter(spec["slots"]))] = record
            round_s.append(time.monotonic() - round_started)
            if isinstance(session["rounds"], int):
                if round_no >= session["rounds"]:
                    break
                continue
            if round_no >= session["min_rounds"] and judge is not None:
                verdict, judged_round = judge(records), round_no
                if verdict["met"]:
                    stopped = "target met"
                    break
            # The next round is expected to take as long as the slowest so far. Two rounds
            # whatever the budget: one gives no interval at all.
            expected_end = time.monotonic() - trials_started + max(round_s)
            if round_no >= FLOOR_ROUNDS and expected_end > session["max_s"]:
                stopped = "budget spent"
                break
        processes = warm.describe()
    # Whatever ended the session, the half-widths it records are those of all its rounds.
    if judge is not None and judged_round != round_no:
        verdict = judge(records)
    # Met only by the rule that may stop: intervals inside the target after fewer than
    # min_rounds rounds of an auto session are not a verdict of the stopping rule.
    met = bool(verdict["met"]) and (stopped != "budget spent")
    total_s = time.monotonic() - started
    summary = {
        "scenario": session["scenario"],
        "precision": session["precision"],
        "rounds_setting": session["rounds"],
        "rounds": round_no,
        "trials": sum(len(round_order(session, r)) for r in range(1, round_no + 1)),
        "stopped": stopped,
        "target_half_width": session["target_half_width"],
        "max_s": session["max_s"],
        "half_widths": verdict["answers"],
        "target_met": met,
        "seconds": round(total_s, 3),
        "trial_seconds": round(sum(round_s), 3),
        "window_seconds": round(inside_s, 3),
        "inside_share": round(inside_s / total_s, 4) if total_s > 0 else math.nan,
        "processes": processes,
    }
    write_atomically(out_dir / SESSION_FILE, json.dumps(summary, indent=2))
    return summary


def progress(session: dict, round_no: int, position: int, order: list[str], name: str) -> None:
    """The line that opens each trial: which round, which trial of how many."""
    label = f"{session['scenario']}/{session['precision']} round {round_no}"
    print(f"dualbench {label}: trial {position}/{len(order)}, {name}", file=sys.stderr, flush=True)


def layout_run_paths(session_dir) -> list[Path]:
    """The run.json of every layout trial of a session folder (its sweep points' are not
    layouts), in round order."""
    runs = Path(session_dir).glob("r*/*/run.json")
    return sorted(runs, key=lambda p: (int(p.parent.parent.name[1:]), p.parent.name))


def sweep_run_paths(session_dir) -> list[Path]:
    """The run.json of every contention-sweep trial of a session folder."""
    runs = Path(session_dir).glob(f"r*/{SWEEP_PREFIX}*/run.json")
    return sorted(runs, key=lambda p: (int(p.parents[2].name[1:]), p.parent.name))


def layout_records(session_dir) -> list[dict]:
    """The records of layout_run_paths."""
    return [json.loads(p.read_text()) for p in layout_run_paths(session_dir)]
