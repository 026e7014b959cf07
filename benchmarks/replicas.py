"""Beyond two models on this machine: the scaling curve, the interference matrix, lockstep
against free-running co-location, and the origin note's single-thread code, with intervals.

    python benchmarks/replicas.py                     # three tiny models, 3 rounds
    python benchmarks/replicas.py --default           # the default config (A, B), 3 rounds
    python benchmarks/replicas.py --default --scenarios short long --repeats 3
    python benchmarks/replicas.py --repeats 5 --keep

Without --default: three synthetic tiny models (A, B, C) on the CPU with auto slots, so on a
2-core machine the three workers of ``colocated`` share both cores (oversubscribed: validation
says so), one short scenario, layouts alone x 3, colocated:A+B, colocated, lockstep:A+B and
single_thread_streams:A+B. With --default: config/config.yaml with its own layouts and
scenarios, sweeps off. Either way it runs `snakemake report` in a temporary work directory and
prints from results/metrics/: the scaling curve (scaling.csv and the v1/v_total answers), the
interference matrix (throughput slowdowns with intervals) and the schedule comparisons.
"""

from __future__ import annotations

import argparse
import math
import shutil

import pandas as pd
from common import default_config, run_pipeline  # benchmarks/common.py (the script directory)

TINY = "synthetic:llama-3.2-tiny"


def three_tiny(repeats: int) -> dict:
    return {
        "device": "cpu",
        "models": {name: {"source": TINY, "seed": i} for i, name in enumerate("ABC")},
        "precisions": ["native16"],
        "layouts": [
            "alone_A",
            "alone_B",
            "alone_C",
            "colocated:A+B",
            "colocated",
            "lockstep:A+B",
            "single_thread_streams:A+B",
        ],
        "scenarios": {
            "short": {
                "prompt_tokens": 64,
                "new_tokens": 32,
                "trial_s": 4,
                "rounds": repeats,
                "min_requests": 3,
            }
        },
        "report": {"title": "three tiny models on this CPU"},
    }


def the_default(repeats: int, scenarios: list[str] | None) -> dict:
    cfg = default_config()
    for scenario in cfg["scenarios"].values():
        scenario["rounds"] = repeats
    if scenarios:
        cfg["scenarios"] = {name: cfg["scenarios"][name] for name in scenarios}
    for scenario in cfg["scenarios"].values():
        scenario.pop("sweep", None)
    return cfg


def fmt(row, digits: int = 3) -> str:
    if math.isnan(row.estimate):
        return "-"
    if math.isnan(row.lo) or math.isnan(row.hi):
        return f"{row.estimate:.{digits}g}"
    return f"{row.estimate:.{digits}g} [{row.lo:.{digits}g}, {row.hi:.{digits}g}] (n={row.n})"


def print_answers(answers: pd.DataFrame, names: list[str], title: str) -> None:
    rows = answers[answers.answer.isin(names)]
    if rows.empty:
        return
    print(f"\n{title}")
    for r in rows.itertuples():
        verdict = f"  {r.verdict}" if isinstance(r.verdict, str) and r.verdict else ""
        where = f"{r.scenario:<7} {r.precision:<5} {r.answer:<28} {r.subject:<30}"
        print(f"  {where} {fmt(r)}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", action="store_true", help="the default config, not 3 tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenarios", nargs="+", help="with --default: only these scenarios")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    cfg = the_default(args.repeats, args.scenarios) if args.default else three_tiny(args.repeats)
    work, seconds = run_pipeline(cfg, "dualbench-replicas-")
    metrics = work / "results/metrics"
    print(f"snakemake report: {seconds:.0f} s ({work})")
    runs = pd.read_csv(metrics / "runs.csv")
    print("\nruns (median over rounds): throughput tok/s, TPOT p50 ms")
    summary = runs.groupby(["scenario", "precision", "layout", "slot"], sort=False)[
        ["throughput_tok_s", "tpot_ms_p50"]
    ].median()
    print(summary.round(2).to_string())
    scaling = pd.read_csv(metrics / "scaling.csv")
    print("\nscaling curve (median over rounds)")
    curve = scaling.groupby(["scenario", "precision", "layout", "schedule", "k"], sort=False)[
        ["v1_sum", "v_total", "growth_per_model", "scaling_efficiency"]
    ].median()
    print(curve.round(3).to_string())
    answers = pd.read_csv(metrics / "answers.csv", keep_default_na=False, na_values=[""])
    print_answers(answers, ["v1", "v_total", "growth_per_model"], "scaling answers")
    print_answers(answers, ["scaling_efficiency", "slowdown_throughput"], "interference")
    print_answers(
        answers,
        [
            "schedule_throughput_ratio",
            "schedule_tpot_p50_ratio",
            "schedule_tpot_sd_ratio",
            "schedule_tokens_per_j_ratio",
            "handoff_us",
        ],
        "schedules (ratio to free-running co-location of the same models, same rounds)",
    )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
