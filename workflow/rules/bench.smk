rule run:
    input:
        unpack(run_inputs),
    output:
        "results/runs/{scenario}/{precision}/{layout}/run.json",
        "results/runs/{scenario}/{precision}/{layout}/telemetry.csv",
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
        runs="results/metrics/runs.csv",
        requests="results/metrics/requests.csv",
        scaling="results/metrics/scaling.csv",
        precisions="results/metrics/precisions.csv",
        int4="results/metrics/int4.csv",
        energy="results/metrics/energy.csv",
        telemetry="results/metrics/telemetry.csv",
        environment="results/metrics/environment.json",
    params:
        models=dbconfig.canonical({s: CFG["models"][s]["source"] for s in SLOTS}),
    script:
        "../scripts/aggregate.py"
