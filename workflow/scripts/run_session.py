# Thin adapter: rule session -> dualbench.measure.rounds.run_session, with the analysis'
# stopping rule (rounds: auto) and the sweep neighbour's solo capacity injected: the
# measuring stage does not import the analysis.
import json
from functools import partial
from pathlib import Path

from dualbench.analysis.contention import solo_capacity
from dualbench.analysis.stopping import judge
from dualbench.config import exclusivity_policy
from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.measure.lifetime import exit_on_signals
from dualbench.measure.rounds import layout_records, run_session

spec = json.loads(snakemake.params.spec)
inputs = dict(snakemake.input.items())
baseline = layout_records(inputs.pop("baseline")) if "baseline" in inputs else []
with tee_stderr(snakemake.log.session), user_errors_exit(), exit_on_signals():
    # Read from the config, not the params: editing run.exclusivity must rerun no session.
    policy = exclusivity_policy(snakemake.config)
    run_session(
        spec,
        inputs,
        snakemake.output[0],
        snakemake.log.workers,
        policy,
        judge=partial(
            judge,
            target=spec["target_half_width"],
            confidence=spec["confidence"],
            baseline=baseline,
        ),
        capacity=solo_capacity,
    )
