"""Time of a no-op `snakemake --cores 1 report` after a complete run (target: <= 3 s).

    python benchmarks/noop.py            # in the repository, after `make report`

It is what a user pays to learn that nothing changed: config validation, DAG building and the
params comparison of every job, with no job to run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    if not (repo / "results/report/report.html").exists():
        raise SystemExit("no complete run yet: run `make report` first")
    times = []
    for _ in range(5):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", "report"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - started)
        if "Nothing to be done" not in out.stdout + out.stderr:
            raise SystemExit("the run was not a no-op: something was out of date")
    print(
        "no-op snakemake --cores 1 report: "
        + ", ".join(f"{t:.2f}" for t in times)
        + f" s; median {statistics.median(times):.2f} s (target <= 3 s)"
    )


if __name__ == "__main__":
    main()
