# Names, wildcard constraints and target lists shared by the rules.
from dualbench.analysis.columns import METRICS_FILES
from dualbench.config.vocabulary import PRECISION_DTYPES
from dualbench.measure.lifetime import forward_interrupts_to_jobs

# Ctrl-C or `kill -INT` of Snakemake stops running jobs now, not after their window.
if workflow.local_exec and not workflow.remote_exec:
    forward_interrupts_to_jobs()

SLOTS = list(dbconfig.SLOT_NAMES)
# The tables of the analysis stage, named once (dualbench.analysis.columns).
METRICS_OUTPUTS = {
    name: f"results/metrics/{file}" for name, file in METRICS_FILES.items()
}


wildcard_constraints:
    model="|".join(SLOTS),
    precision="|".join(PRECISION_DTYPES),
    layout="|".join(dbconfig.LAYOUTS),
    scenario="[a-z][a-z0-9_]*",


def run_outputs():
    return expand(
        "results/runs/{scenario}/{precision}/{layout}/run.json",
        scenario=list(CFG["scenarios"]),
        precision=CFG["precisions"],
        layout=CFG["layouts"],
    )


def run_inputs(wildcards):
    """The converted models a run loads: only the slots its layout runs."""
    return {
        slot: f"results/models/{slot}/{wildcards.precision}"
        for slot in dbconfig.layout_slots(wildcards.layout)
    }
