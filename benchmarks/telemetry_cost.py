"""What sampling costs the measured work: a solo run's throughput with the sampler on / off.

    python benchmarks/telemetry_cost.py                 # builds the mini synthetic model once
    python benchmarks/telemetry_cost.py --rounds 6 --interval 0.2

Same model, slot, scenario and duration; the two settings alternate, in swapped order every
round, so drift on a shared VM hits both alike. The sampler runs in the runner process, as in
every real run (on CPU it reads the worker's CPU time with psutil; no RAPL here). Target: median
of the round ratios >= 0.99.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import build_mini_bf16  # benchmarks/common.py (the script's directory)

from dualbench import config
from dualbench.analysis.runs import run_tables
from dualbench.measure import runner

SCENARIO = {"prompt_tokens": 128, "new_tokens": 32, "batch_size": 1, "min_requests": 3}


def solo_throughput(model_dir: str, duration_s: float, interval_s: float, on: bool, work: Path):
    cfg = config.validate(
        {
            "device": "cpu",
            "models": {s: {"source": "synthetic:llama-3.2-mini"} for s in "AB"},
            "precisions": ["bf16"],
            "scenarios": {"short": {**SCENARIO, "trial_s": duration_s}},
            "telemetry": {"enabled": on, "interval_s": interval_s, "idle_s": 1},
        }
    )
    spec = config.run_spec(cfg, "short", "bf16", "alone_A")
    record = runner.run(spec, {"A": model_dir}, work)
    if record["status"] != "ok":
        raise SystemExit(f"run failed: {record['error']}")
    rows, _ = run_tables(record)
    return rows[0]["throughput_tok_s"], record["telemetry"]["samples"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="a converted model (default: build mini once)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.2, help="sampling interval, s")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dualbench-telemetry-"))
    model_dir = args.model_dir or build_mini_bf16(work)
    print(f"model {model_dir}, {args.duration:.0f} s per run, interval {args.interval} s")
    ratios, speeds = [], {True: [], False: []}
    for i in range(args.rounds):
        result = {}
        for on in (True, False) if i % 2 == 0 else (False, True):
            result[on], samples = solo_throughput(
                model_dir, args.duration, args.interval, on, work / f"r{i}-{on}"
            )
            speeds[on].append(result[on])
            if on:
                print(f"  sampler on: {samples} samples")
        ratios.append(result[True] / result[False])
        print(
            f"round {i + 1}: on {result[True]:.2f} tok/s, off {result[False]:.2f} tok/s, "
            f"ratio {ratios[-1]:.3f}"
        )
    of_medians = statistics.median(speeds[True]) / statistics.median(speeds[False])
    print(
        f"sampler on / off: median of {args.rounds} round ratios "
        f"{statistics.median(ratios):.3f}, ratio of medians {of_medians:.3f} (target >= 0.99)"
    )


if __name__ == "__main__":
    main()
