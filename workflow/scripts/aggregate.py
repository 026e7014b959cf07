# Thin adapter: rule aggregate -> dualbench.analysis.aggregate.aggregate
import json
from pathlib import Path

from dualbench.analysis.aggregate import aggregate
from dualbench.job_log import tee_stderr
from dualbench.measure.rounds import SESSION_FILE, layout_run_paths, sweep_run_paths

spec = json.loads(snakemake.params.spec)
sessions = list(snakemake.input.sessions)
with tee_stderr(snakemake.log[0]):
    aggregate(
        [p for d in sessions for p in layout_run_paths(d)],
        Path(snakemake.output.runs).parent,
        spec["models"],
        spec["analysis"],
        calibration_paths=list(snakemake.input.calibrations),
        sweep_paths=[p for d in sessions for p in sweep_run_paths(d)],
        sessions=[json.loads((Path(d) / SESSION_FILE).read_text()) for d in sessions],
    )
