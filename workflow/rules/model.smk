rule fetch_model:
    output:
        directory("results/models/{model}/base"),
    log:
        "logs/fetch_model/{model}.log",
    params:
        spec=lambda w: dbconfig.model_params(CFG, w.model),
    script:
        "../scripts/fetch_model.py"


rule convert:
    input:
        "results/models/{model}/base",
    output:
        directory("results/models/{model}/{precision}"),
    log:
        "logs/convert/{model}/{precision}.log",
    params:
        spec=lambda w: dbconfig.convert_params(CFG, w.precision),
    script:
        "../scripts/convert.py"
