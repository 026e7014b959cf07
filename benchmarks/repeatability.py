"""How wide the intervals of the default scenarios are on this machine, and how many repeat
blocks a ±3% answer on slowdown would take.

    python benchmarks/repeatability.py                 # the default config, repeats: 5
    python benchmarks/repeatability.py --repeats 3 --scenarios short long --keep

Runs `snakemake report` on config/config.yaml with `repeats` set, in a temporary work
directory (about repeats x 5 minutes on 2 cores), then prints every interference answer of
answers.csv: estimate, 95% interval, its half-width in percent, and the blocks the same
block-to-block spread would need for a half-width of 3% (from sd(log r) = half-width · √n /
t_{0.975, n-1}, the inverse of the paired interval of dualbench.analysis.intervals).
"""

from __future__ import annotations

import argparse
import math
import subprocess

import pandas as pd
from common import default_config, run_pipeline  # benchmarks/common.py (the script directory)
from scipy import stats

# The answers whose interval decides "interference or not" (1.00 = none).
INTERFERENCE = ("scaling_efficiency", "slowdown_throughput", "slowdown_ttft_p50",
                "slowdown_tpot_p50", "slowdown_e2e_p50")  # fmt: skip
TARGET = 0.03


def blocks_for(half_width_log: float, n: int, target: float = TARGET, confidence=0.95) -> int:
    """Blocks for a half-width of ``target`` (as a ratio) with the spread of these n blocks."""
    q = (1 + confidence) / 2
    sd = half_width_log * math.sqrt(n) / stats.t.ppf(q, n - 1)
    if sd == 0:
        return 2
    for blocks in range(2, 10_000):
        if stats.t.ppf(q, blocks - 1) * sd / math.sqrt(blocks) <= math.log(1 + target):
            return blocks
    return 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenarios", nargs="*", help="a subset of the default's scenarios")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    cfg = default_config()
    cfg["repeats"] = args.repeats
    if args.scenarios:
        cfg["scenarios"] = {k: v for k, v in cfg["scenarios"].items() if k in args.scenarios}
    work, seconds = run_pipeline(cfg, "dualbench-repeatability-")
    print(f"{args.repeats} blocks per scenario in {seconds:.0f} s")

    answers = pd.read_csv(work / "results/metrics/answers.csv")
    blocks = pd.read_csv(work / "results/metrics/blocks.csv")
    for row in blocks[blocks.drift].itertuples():
        print(f"drift: {row.scenario}/{row.precision} block {row.repeat}: {row.drift_note}")
    sel = answers[answers.answer.isin(INTERFERENCE)]
    print(f"{'scenario/precision':<16} {'answer':<22} {'slot':<4} {'estimate':>8} "
          f"{'95% interval':>17} {'±%':>6} {'n':>2} {'for ±3%':>7}  verdict")  # fmt: skip
    for r in sel.itertuples():
        key = f"{r.scenario}/{r.precision}"
        if not (r.n >= 2 and r.lo > 0 and r.hi > 0):
            print(f"{key:<16} {r.answer:<22} {r.subject:<4} {r.estimate:8.3f}  (no interval)")
            continue
        half = (math.log(r.hi) - math.log(r.lo)) / 2
        print(
            f"{key:<16} {r.answer:<22} {r.subject:<4} {r.estimate:8.3f} "
            f"{r.lo:8.3f}–{r.hi:<8.3f} {100 * (math.exp(half) - 1):6.1f} {r.n:>2} "
            f"{blocks_for(half, int(r.n)):>7}  {r.verdict}"
        )
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
