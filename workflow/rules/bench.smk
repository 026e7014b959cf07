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
    params:
        spec=lambda w: dbconfig.block_params(
            CFG, w.scenario, w.precision, int(w.repeat)
        ),
    script:
        "../scripts/run_block.py"


rule aggregate:
    input:
        run_outputs(),
    output:
        **METRICS_OUTPUTS,
    log:
        "logs/aggregate.log",
    params:
        spec=dbconfig.aggregate_params(CFG),
    script:
        "../scripts/aggregate.py"
