# Thin adapter: rule aggregate -> dualbench.analysis.aggregate.aggregate
import json
from pathlib import Path

from dualbench.analysis.aggregate import aggregate
from dualbench.job_log import tee_stderr

spec = json.loads(snakemake.params.spec)
# A sweep block is a folder with one run.json per point.
sweep_runs = sorted(p for d in snakemake.input.sweeps for p in Path(d).glob("*/run.json"))
with tee_stderr(snakemake.log[0]):
    aggregate(
        list(snakemake.input.runs),
        Path(snakemake.output.runs).parent,
        spec["models"],
        spec["analysis"],
        calibration_paths=list(snakemake.input.calibrations),
        sweep_paths=sweep_runs,
    )
