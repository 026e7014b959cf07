# Names, wildcard constraints and target lists shared by the rules.
from dualbench.analysis.columns import METRICS_FILES

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


# A measuring session of a scenario and precision: a folder with session.json and, per round,
# r<n>/<layout>/run.json and r<n>/sweep/f<fraction>/run.json (how many rounds is known only
# once it has run: rounds: auto).
SESSION_DIR = "results/sessions/{scenario}/{precision}"
CALIBRATION = "results/calibration/{slot}/{dtype}.json"
# What a measuring job (session, calibrate) asks a cluster for: its slots' accelerators as
# the resources the Slurm executor turns into --gres / --gpus (dualbench.config.cluster).
DEVICE_RESOURCES = dbconfig.scheduler_resources(CFG)


wildcard_constraints:
    model="|".join(SLOTS),
    slot="|".join(SLOTS),
    dtype="|".join(sorted(set(PRECISION_DTYPES.values()))),
    precision="|".join(PRECISION_DTYPES),
    scenario="[a-z][a-z0-9_]*",


def session_outputs():
    """Every measuring session: one per scenario and precision."""
    return expand(
        SESSION_DIR, scenario=list(CFG["scenarios"]), precision=CFG["precisions"]
    )


def session_inputs(wildcards):
    """The converted models a session loads (the slots of its trials) and, for INT4, the
    dense session of the same scenario, whose rounds INT4's ratios are judged against.
    """
    spec = dbconfig.session_spec(CFG, wildcards.scenario, wildcards.precision)
    slots = {s for trial in spec["trials"].values() for s in trial["slots"]}
    inputs = {
        slot: f"results/models/{slot}/{wildcards.precision}"
        for slot in SLOTS
        if slot in slots
    }
    if spec["baseline"]:
        inputs["baseline"] = SESSION_DIR.format(
            scenario=wildcards.scenario, precision=spec["baseline"]
        )
    return inputs


def calibration_outputs():
    """One calibration per slot and compute dtype of the config's precisions."""
    return expand(CALIBRATION, slot=SLOTS, dtype=dbconfig.calibration_dtypes(CFG))
