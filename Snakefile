# dualbench: two Llama 3.2 models side by side. The engine (src/dualbench) does the work;
# these rules decide what runs and what is cached. Every rule gets exactly the config slice it
# reads, as one canonical JSON string (dualbench.config), so an edit reruns only what it touches.
from snakemake.utils import min_version

from dualbench import config as dbconfig

min_version("9.11")


configfile: "config/config.yaml"


try:
    CFG = dbconfig.validate(config)
except dbconfig.ConfigError as error:
    raise SystemExit(f"dualbench: config error: {error}")


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
