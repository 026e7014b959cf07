# Thin adapter: rule run -> dualbench.runner.run_to_file
import json

from dualbench.cli import user_errors_exit
from dualbench.runner import run_to_file

spec = json.loads(snakemake.params.spec)
with user_errors_exit():
    run_to_file(spec, dict(snakemake.input.items()), snakemake.output[0])
