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


RUN_DIR = "results/runs/{scenario}/{precision}/r{repeat}/{layout}"
# The outputs of a block: each layout's run record and telemetry, named by layout.
BLOCK_OUTPUTS = {
    **{
        layout: RUN_DIR.replace("{layout}", layout) + "/run.json"
        for layout in CFG["layouts"]
    },
    **{
        f"{layout}_telemetry": RUN_DIR.replace("{layout}", layout) + "/telemetry.csv"
        for layout in CFG["layouts"]
    },
}


wildcard_constraints:
    model="|".join(SLOTS),
    precision="|".join(PRECISION_DTYPES),
    layout="|".join(dbconfig.LAYOUTS),
    scenario="[a-z][a-z0-9_]*",
    repeat="[1-9][0-9]*",


def run_outputs():
    """Every run record of every block."""
    return expand(
        RUN_DIR + "/run.json",
        scenario=list(CFG["scenarios"]),
        precision=CFG["precisions"],
        repeat=range(1, CFG["repeats"] + 1),
        layout=CFG["layouts"],
    )


def block_inputs(wildcards):
    """The converted models a block loads: the slots of its layouts."""
    slots = {s for layout in CFG["layouts"] for s in dbconfig.layout_slots(layout)}
    return {
        slot: f"results/models/{slot}/{wildcards.precision}"
        for slot in SLOTS
        if slot in slots
    }
