# Thin adapter: rule report -> dualbench.report.render.write_report
import json
from pathlib import Path

from dualbench.analysis.definitions import DEFINITIONS
from dualbench.job_log import tee_stderr
from dualbench.report.render import write_report

spec = json.loads(snakemake.params.spec)
with tee_stderr(snakemake.log[0]):
    write_report(
        Path(snakemake.input.runs).parent,
        Path(snakemake.output[0]),
        spec["title"],
        spec["scenarios"],
        DEFINITIONS,
        spec["hardware_notes"],
        spec["settings"],
    )
