# Thin adapter: rule aggregate -> dualbench.analysis.aggregate
import json
from pathlib import Path

from dualbench.job_log import tee_stderr
from dualbench.analysis.aggregate import aggregate

with tee_stderr(snakemake.log[0]):
    aggregate(
        list(snakemake.input),
        Path(snakemake.output.runs).parent,
        json.loads(snakemake.params.models),
    )
