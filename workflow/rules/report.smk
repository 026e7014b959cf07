rule report:
    input:
        **rules.aggregate.output,
    output:
        "results/report/report.html",
    log:
        "logs/report.log",
    params:
        spec=dbconfig.report_params(CFG),
    script:
        "../scripts/report.py"
