rule block:
    input:
        unpack(block_inputs),
    output:
        **BLOCK_OUTPUTS,
    log:
        block="logs/block/{scenario}/{precision}/r{repeat}.log",
        # Per run of the block, per worker: its spec, its stderr and its result.
        workers=directory("logs/block/{scenario}/{precision}/r{repeat}.workers"),
    # A run owns the whole machine: nothing may share its cores while it measures.
    threads: workflow.cores
    resources:
        **DEVICE_RESOURCES,
    params:
        spec=lambda w: dbconfig.block_params(
            CFG, w.scenario, w.precision, int(w.repeat)
        ),
    script:
        "../scripts/run_block.py"


rule calibrate:
    output:
        CALIBRATION,
    log:
        calibrate="logs/calibrate/{slot}/{dtype}.log",
        probes=directory("logs/calibrate/{slot}/{dtype}.probes"),
    # It measures the whole machine's memory bandwidth: nothing may run beside it.
    threads: workflow.cores
    resources:
        **DEVICE_RESOURCES,
    params:
        spec=lambda w: dbconfig.calibration_params(CFG, w.slot, w.dtype),
    script:
        "../scripts/calibrate.py"


rule sweep:
    input:
        unpack(sweep_inputs),
    output:
        directory(SWEEP_DIR),
    log:
        sweep="logs/sweep/{scenario}/{precision}/r{repeat}.log",
        workers=directory("logs/sweep/{scenario}/{precision}/r{repeat}.workers"),
    # A run owns the whole machine, as in a block.
    threads: workflow.cores
    resources:
        **DEVICE_RESOURCES,
    params:
        spec=lambda w: dbconfig.sweep_params(
            CFG, w.scenario, w.precision, int(w.repeat)
        ),
    script:
        "../scripts/run_sweep.py"


rule aggregate:
    input:
        runs=run_outputs(),
        calibrations=calibration_outputs(),
        sweeps=sweep_outputs(),
    output:
        **METRICS_OUTPUTS,
    log:
        "logs/aggregate.log",
    params:
        spec=dbconfig.aggregate_params(CFG),
    script:
        "../scripts/aggregate.py"
