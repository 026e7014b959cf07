rule report:
    input:
        **rules.aggregate.output,
    output:
        "results/report/report.html",
    params:
        spec=dbconfig.report_params(CFG),
    script:
        "../scripts/report.py"
