# Thin adapter: rule sweep -> dualbench.measure.sweep.run_sweep, with the neighbour's solo
# capacity read from its alone run of the same block (dualbench.analysis.contention).
import json
from pathlib import Path

from dualbench.analysis.contention import solo_capacity
from dualbench.config import exclusivity_policy
from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.measure.lifetime import exit_on_signals
from dualbench.measure.sweep import run_sweep

spec = json.loads(snakemake.params.spec)
alone = json.loads(Path(snakemake.input.capacity).read_text())
capacity, note = solo_capacity(alone, spec["neighbour"])
out_dir = Path(snakemake.output[0])
out_paths = {point: out_dir / point / "run.json" for point in spec["order"]}
models = {slot: snakemake.input[slot] for slot in (spec["victim"], spec["neighbour"])}
with tee_stderr(snakemake.log.sweep), user_errors_exit(), exit_on_signals():
    # Read from the config, not the params: editing run.exclusivity must rerun no sweep.
    policy = exclusivity_policy(snakemake.config)
    run_sweep(spec, capacity, note, models, out_paths, snakemake.log.workers, policy)
