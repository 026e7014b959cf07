# Thin adapter: rule aggregate -> dualbench.analysis.aggregate.aggregate
import json
from pathlib import Path

from dualbench.analysis.aggregate import aggregate
from dualbench.job_log import tee_stderr

spec = json.loads(snakemake.params.spec)
with tee_stderr(snakemake.log[0]):
    aggregate(
        list(snakemake.input),
        Path(snakemake.output.runs).parent,
        spec["models"],
        spec["analysis"],
    )
