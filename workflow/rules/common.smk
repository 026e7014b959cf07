# Names, wildcard constraints and target lists shared by the rules.
from dualbench.analysis.columns import METRICS_FILES
import re

from dualbench.config.vocabulary import PRECISION_DTYPES, model_names
from dualbench.measure.lifetime import forward_interrupts_to_jobs

# Ctrl-C or `kill -INT` of Snakemake stops running jobs now, not after their window.
if JOBS_RUN_HERE:
    forward_interrupts_to_jobs()

# The config's models, sorted: each runs in the slot of its name.
SLOTS = list(model_names(CFG))
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


# One contention sweep block: a folder with one run per point (its points depend on the
# scenario's fractions, which an output list cannot: Snakemake's outputs are per rule).
SWEEP_DIR = "results/sweeps/{scenario}/{precision}/r{repeat}"
CALIBRATION = "results/calibration/{slot}/{dtype}.json"
# What a measuring job (block, sweep, calibrate) asks a cluster for: its slots' accelerators as
# the resources the Slurm executor turns into --gres / --gpus (dualbench.config.cluster).
DEVICE_RESOURCES = dbconfig.scheduler_resources(CFG)


wildcard_constraints:
    model="|".join(SLOTS),
    slot="|".join(SLOTS),
    dtype="|".join(sorted(set(PRECISION_DTYPES.values()))),
    precision="|".join(PRECISION_DTYPES),
    # Layout names hold + (colocated:A+B): escaped, so the regex means the name.
    layout="|".join(re.escape(layout) for layout in CFG["layouts"]),
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
    slots = {
        s for layout in CFG["layouts"] for s in dbconfig.layout_slots(layout, SLOTS)
    }
    return {
        slot: f"results/models/{slot}/{wildcards.precision}"
        for slot in SLOTS
        if slot in slots
    }


def sweep_outputs():
    """Every sweep block of every scenario that has a sweep."""
    return expand(
        SWEEP_DIR,
        scenario=[name for name, sc in CFG["scenarios"].items() if sc["sweep"]],
        precision=CFG["precisions"],
        repeat=range(1, CFG["repeats"] + 1),
    )


def sweep_inputs(wildcards):
    """A sweep block loads the victim's and the neighbour's models, and reads the neighbour's
    solo capacity from its alone run of the same block."""
    sweep = CFG["scenarios"][wildcards.scenario]["sweep"]
    models = {
        slot: f"results/models/{slot}/{wildcards.precision}"
        for slot in (sweep["victim"], sweep["neighbour"])
    }
    capacity = RUN_DIR.replace("{layout}", dbconfig.alone_layout(sweep["neighbour"]))
    return {**models, "capacity": capacity + "/run.json"}


def calibration_outputs():
    """One calibration per slot and compute dtype of the config's precisions."""
    return expand(CALIBRATION, slot=SLOTS, dtype=dbconfig.calibration_dtypes(CFG))
