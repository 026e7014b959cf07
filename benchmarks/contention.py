"""The wall on this machine: calibration, each run's MBU and regime, the contention curve and
the fitted k with its interval, for the default config.

    python benchmarks/contention.py                  # the default's short and long, 3 rounds
    python benchmarks/contention.py --repeats 1 --scenarios long --keep

Runs `snakemake report` on config/config.yaml (cut to --scenarios, --repeats rounds a session) in a
temporary work directory, then prints from results/metrics/: calibration.csv (copy bandwidth
alone and contended, matmul throughput), every run's decode bandwidth, MBU, prefill MFU and
regime (runs.csv), the sweep's curve with intervals over rounds (contention_curve.csv) and the
three fits with their bootstrap intervals and AICc (contention_fits.csv).
"""

from __future__ import annotations

import argparse
import math
import shutil

import pandas as pd
from common import default_config, run_pipeline  # benchmarks/common.py (the script directory)

GB = 1e9


def interval(row, name: str, scale: float = 1.0, fmt: str = ".2f") -> str:
    value, lo, hi = (row[f"{name}{s}"] / scale for s in ("", "_lo", "_hi"))
    if math.isnan(value):
        return "-"
    if math.isnan(lo) or math.isnan(hi):
        return f"{value:{fmt}}"
    return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def print_calibration(metrics) -> None:
    cal = pd.read_csv(metrics / "calibration.csv")
    print("\ncalibration (copy = read + write traffic; median of the repeats)")
    for r in cal.itertuples():
        print(
            f"  {r.slot} {r.device:<10} {r.dtype:<9} copy alone {r.copy_alone_bytes_s / GB:6.1f} "
            f"GB/s (spread {100 * r.copy_alone_spread:.0f}%), contended "
            f"{r.copy_contended_bytes_s / GB:6.1f} GB/s "
            f"(all slots {r.copy_contended_total_bytes_s / GB:.1f}), "
            f"matmul n={r.matmul_n} {r.matmul_flop_s / GB:7.1f} GFLOP/s"
        )  # fmt: skip


def print_runs(metrics) -> None:
    runs = pd.read_csv(metrics / "runs.csv")
    print("\nruns: decode bandwidth, MBU (vs alone copy peak), prefill MFU, regime")
    for r in runs.itertuples():
        print(
            f"  {r.run_id:<32} {r.slot} decode {r.decode_bw_bytes_s / GB:6.2f} GB/s "
            f"MBU {100 * r.mbu:5.1f}%  prefill MFU {100 * r.mfu:5.1f}%  {r.regime}"
            + ("" if r.valid else "  (invalid)")
        )


def print_sweeps(metrics) -> None:
    curve = pd.read_csv(metrics / "contention_curve.csv")
    fits = pd.read_csv(metrics / "contention_fits.csv")
    for key, points in curve.groupby(["scenario", "precision", "victim", "neighbour"]):
        print(f"\nsweep {key[0]}/{key[1]}: victim {key[2]}, neighbour {key[3]}")
        wide = points.pivot_table(
            index=["fraction", "offered_rps"], columns="metric", values=["estimate", "lo", "hi"]
        )
        print(
            f"  {'fraction':>8} {'rate/s':>7} {'victim TPOT ms':>22} {'victim GB/s':>22} "
            f"{'pair GB/s':>22}"
        )
        for (fraction, rate), r in wide.iterrows():
            cells = []
            for metric, scale in (
                ("victim_tpot_ms", 1),
                ("victim_bw_bytes_s", GB),
                ("pair_bw_bytes_s", GB),
            ):
                row = {
                    s: r.get((col, metric), math.nan)
                    for s, col in (("", "estimate"), ("_lo", "lo"), ("_hi", "hi"))
                }
                cells.append(interval({f"m{k}": v for k, v in row.items()}, "m", scale))
            print(f"  {fraction:8.2f} {rate:7.2f} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")
        sel = fits[(fits.scenario == key[0]) & (fits.precision == key[1]) & (fits.victim == key[2])]
        for f in sel.itertuples():
            row = f._asdict()
            mark = (
                "preferred" if f.preferred and f.distinguishable else "leads" if f.preferred else ""
            )
            print(
                f"  {f.model:<11} BW_max {interval(row, 'bw_max', GB)} GB/s, "
                f"k {interval(row, 'k', 1, '.3f')} per req/s, "
                f"BW_inf {interval(row, 'bw_inf', GB)}, beta {interval(row, 'beta', GB)}; "
                f"AICc {f.aicc:.1f} (Δ {f.delta_aicc:.1f}) n={f.n} {mark}"
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenarios", nargs="*", default=["short", "long"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    cfg = default_config()
    for scenario in cfg["scenarios"].values():
        scenario["rounds"] = args.repeats
    cfg["scenarios"] = {k: v for k, v in cfg["scenarios"].items() if k in args.scenarios}
    work, seconds = run_pipeline(cfg, "dualbench-contention-")
    print(f"{', '.join(cfg['scenarios'])}: {args.repeats} rounds in {seconds:.0f} s")
    metrics = work / "results/metrics"
    print_calibration(metrics)
    print_runs(metrics)
    print_sweeps(metrics)
    if args.keep:
        print(f"\nwork dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
