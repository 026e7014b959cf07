rule session:
    input:
        unpack(session_inputs),
    output:
        directory(SESSION_DIR),
    log:
        session="logs/session/{scenario}/{precision}.log",
        # The session's worker processes: each one's spec and stderr.
        workers=directory("logs/session/{scenario}/{precision}.workers"),
    # A session owns the whole machine: nothing may share its cores while it measures.
    threads: workflow.cores
    resources:
        **DEVICE_RESOURCES,
    params:
        spec=lambda w: dbconfig.session_params(CFG, w.scenario, w.precision),
    script:
        "../scripts/run_session.py"


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


# Snakemake's own report (`snakemake --report report.zip`) lists the tables in its "Metrics"
# category as one table of files, a row each: what it is about, its file, what a row of it is.
# Labels, not subcategories: its viewer turns a second label with two values, each on half the
# files, into a toggle, which a two-table subcategory would be. No braces in a label (they are
# wildcards there). A table missing here is still reported, under "other".
METRICS_REPORT_LABELS = {
    "runs": ("runs", "one row per run and slot"),
    "requests": ("runs", "one row per request"),
    "energy": ("runs", "one row per run: energy per device, mean power, tokens/J"),
    "telemetry": ("runs", "every sample of every run, from the run's barrier release"),
    "blocks": ("runs", "one row per round: order, machine state, drift"),
    "sessions": (
        "runs",
        "one row per measuring session: rounds, why it stopped, seconds",
    ),
    "answers": ("answers", "every answer per scenario and precision, 95% interval"),
    "scaling": ("answers", "per round and co-located layout: the scaling curve"),
    "interference": ("answers", "per round, co-located layout and victim: slowdowns"),
    "precisions": ("precision", "per model, precision: bytes, INT4 scheme, fidelity"),
    "int4": ("precision", "INT4 / dense baseline per scenario, round, layout, slot"),
    "calibration": ("bandwidth", "per slot and dtype: copy bandwidth, matmul FLOP/s"),
    "contention": ("bandwidth", "per sweep point and round: rates, TPOT, traffic"),
    "contention_curve": ("bandwidth", "per sweep point and metric: estimate, interval"),
    "contention_fits": ("bandwidth", "per sweep and model: parameters, AICc"),
    "environment": ("provenance", "software, host, devices, run specs (JSON)"),
}


def reported_table(name, path):
    """A table's path (unchanged: no rerun trigger reads the flag), flagged for the report."""
    topic, content = METRICS_REPORT_LABELS.get(name, ("other", ""))
    return report(
        path,
        caption="../report/metrics.rst",
        category="Metrics",
        labels={"topic": topic, "table": METRICS_FILES[name], "content": content},
    )


rule aggregate:
    input:
        sessions=session_outputs(),
        calibrations=calibration_outputs(),
    output:
        **{name: reported_table(name, path) for name, path in METRICS_OUTPUTS.items()},
    log:
        "logs/aggregate.log",
    params:
        spec=dbconfig.aggregate_params(CFG),
    script:
        "../scripts/aggregate.py"
