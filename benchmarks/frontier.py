"""The frontier of a measuring session on this machine: how tight the verdict-bearing answers
get against the session's seconds, for trials of 1, 2, 4 and 8 s (the default's trial_s is
picked from it).

    python benchmarks/frontier.py                          # short, 1 2 4 8 s, 90 s each
    python benchmarks/frontier.py --scenarios short long --budget 120 --trials 1 2

For each scenario and trial length it runs one session of the default config's layouts (its
sweep left out: sweep points are not verdict-bearing) with rounds: auto and a target no
session meets, so it runs until ``--budget`` seconds are spent. Then, for every prefix of its
rounds from 2 on, it computes the answers exactly as the session's stopping rule does
(dualbench.analysis.stopping.judge over the rounds so far) and prints the half-width of the
widest verdict-bearing answer and of A's throughput slowdown co-located, against the seconds
the session had taken by the end of that round (its loading included). The trial lengths run
one after another, not interleaved: compare them with the machine's drift in mind.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import default_config, run_pipeline  # benchmarks/common.py (the script directory)

from dualbench import config
from dualbench.analysis.stopping import judge
from dualbench.hardware import Machine
from dualbench.measure.rounds import SESSION_FILE, layout_records, run_session

SLOWDOWN_A = "slowdown_throughput colocated/A"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=["short"])
    parser.add_argument("--trials", nargs="*", type=float, default=[1, 2, 4, 8])
    parser.add_argument("--budget", type=float, default=90, help="seconds per session")
    args = parser.parse_args()

    raw = default_config()
    raw["precisions"] = ["native16"]
    raw["scenarios"] = {name: raw["scenarios"][name] for name in args.scenarios}
    for scenario in raw["scenarios"].values():
        scenario["sweep"] = None
    cfg = config.validate(raw, Machine())
    precision = cfg["precisions"][0]
    targets = [f"results/models/{s}/{precision}" for s in ("A", "B")]
    work, _ = run_pipeline(raw, "dualbench-frontier-", targets)
    models = {s: str(work / f"results/models/{s}/{precision}") for s in ("A", "B")}
    print(f"precision {precision}; layouts {', '.join(cfg['layouts'])}; {args.budget:g} s each")
    print("scenario trial_s round seconds widest_hw answer slowdown_A_hw")
    for scenario in args.scenarios:
        for trial_s in args.trials:
            cfg["scenarios"][scenario].update(
                trial_s=trial_s, rounds="auto", target_half_width=1e-9, max_s=args.budget
            )
            spec = config.session_spec(cfg, scenario, precision)
            out = Path(tempfile.mkdtemp(prefix="session-", dir=work))
            run_session(spec, models, out / "results", out / "workers")
            for line in frontier(out / "results", spec):
                print(f"{scenario} {trial_s:g} {line}", flush=True)


def frontier(session_dir: Path, spec: dict) -> list[str]:
    """One line per round from 2 on (the first with an interval): its end in session seconds
    and the half-widths then."""
    summary = json.loads((session_dir / SESSION_FILE).read_text())
    records = layout_records(session_dir)
    # Loading and warm-up: what the session spent outside its trials.
    elapsed = summary["seconds"] - summary["trial_seconds"]
    lines = []
    for round_no in range(1, summary["rounds"] + 1):
        mine = [r for r in records if r["spec"]["repeat"] == round_no]
        elapsed += sum(r.get("elapsed_s", 0.0) for r in mine)
        if round_no < 2:
            continue
        so_far = [r for r in records if r["spec"]["repeat"] <= round_no]
        widths = judge(so_far, spec["target_half_width"], spec["confidence"])["answers"]
        widths = {k: (float("inf") if w is None else w) for k, w in widths.items()}
        worst = max(widths, key=widths.get)
        lines.append(
            f"{round_no} {elapsed:.0f} {100 * widths[worst]:.1f}% {worst.replace(' ', ':')} "
            f"{100 * widths.get(SLOWDOWN_A, float('nan')):.1f}%"
        )
    return lines


if __name__ == "__main__":
    main()
