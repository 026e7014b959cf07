# Thin adapter: rule block -> dualbench.measure.block.run_block
import json

from dualbench.config import exclusivity_policy
from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.measure.block import run_block
from dualbench.measure.lifetime import exit_on_signals

spec = json.loads(snakemake.params.spec)
out_paths = {layout: snakemake.output[layout] for layout in spec["order"]}
# Ctrl-C reaches this script (it is in Snakemake's process group) but not the workers.
with tee_stderr(snakemake.log.block), user_errors_exit(), exit_on_signals():
    # Read from the config, not the params: editing run.exclusivity must rerun no block.
    policy = exclusivity_policy(snakemake.config)
    run_block(spec, dict(snakemake.input.items()), out_paths, snakemake.log.workers, policy)
