rule run:
    input:
        unpack(run_inputs),
    output:
        record="results/runs/{scenario}/{precision}/{layout}/run.json",
        telemetry="results/runs/{scenario}/{precision}/{layout}/telemetry.csv",
    log:
        run="logs/run/{scenario}/{precision}/{layout}.log",
        # Per worker: its spec, its stderr (library output, tracebacks) and its result.
        workers=directory("logs/run/{scenario}/{precision}/{layout}.workers"),
    # A run owns the whole machine: nothing may share its cores while it measures.
    threads: workflow.cores
    params:
        spec=lambda w: dbconfig.run_params(CFG, w.scenario, w.precision, w.layout),
    script:
        "../scripts/run_scenario.py"


rule aggregate:
    input:
        run_outputs(),
    output:
        **METRICS_OUTPUTS,
    log:
        "logs/aggregate.log",
    params:
        models=dbconfig.aggregate_params(CFG),
    script:
        "../scripts/aggregate.py"
