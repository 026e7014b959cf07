# Thin adapter: rule run -> dualbench.measure.runner.run_to_file
import json

from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.measure.lifetime import exit_on_signals
from dualbench.measure.runner import run_to_file

spec = json.loads(snakemake.params.spec)
# Ctrl-C reaches this script (it is in Snakemake's process group) but not the workers.
with tee_stderr(snakemake.log.run), user_errors_exit(), exit_on_signals():
    run_to_file(
        spec, dict(snakemake.input.items()), snakemake.output.record, snakemake.log.workers
    )
