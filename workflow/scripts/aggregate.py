# Thin adapter: rule aggregate -> dualbench.analysis.aggregate
import json
from pathlib import Path

from dualbench.analysis.aggregate import aggregate

aggregate(
    list(snakemake.input),
    Path(snakemake.output.runs).parent,
    json.loads(snakemake.params.models),
)
