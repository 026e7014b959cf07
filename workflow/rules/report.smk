rule report:
    input:
        **rules.aggregate.output,
    output:
        # Also the "Report" category of Snakemake's own report (snakemake --report report.zip).
        report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "logs/report.log",
    params:
        spec=dbconfig.report_params(CFG),
    script:
        "../scripts/report.py"
