# Thin adapter: rule fetch_model -> dualbench.models.sources.fetch
import json

from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.models.sources import fetch

spec = json.loads(snakemake.params.spec)
with tee_stderr(snakemake.log[0]), user_errors_exit():
    fetch(
        spec["source"],
        snakemake.output[0],
        seed=spec.get("seed", 0),
        trust_remote_code=spec.get("trust_remote_code", False),
    )
