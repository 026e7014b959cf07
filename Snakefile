# dualbench: two Llama 3.2 models side by side. The engine (src/dualbench) does the work;
# these rules decide what runs and what is cached. Every rule gets exactly the config slice it
# reads, as one canonical JSON string (dualbench.config), so an edit reruns only what it touches.
import os
import sys

from snakemake.utils import min_version

from dualbench import config as dbconfig
from dualbench.hardware import Machine

min_version("9.11")

# Snakemake's loader ends a YAML syntax error, an empty file or a top-level list in a
# multi-line WorkflowError that names neither the file nor the line: read the config file
# first, so such a file ends in our one line. (It is optional when --configfile names others;
# those Snakemake reads before this Snakefile, see config/README.md.)
CONFIG_FILE = "config/config.yaml"
try:
    if os.path.exists(CONFIG_FILE) or not workflow.overwrite_configfiles:
        dbconfig.read_yaml(CONFIG_FILE)
except dbconfig.ConfigError as error:
    raise SystemExit(f"dualbench: config error: {error}")


configfile: CONFIG_FILE


# The front page of Snakemake's own report (snakemake --report report.zip).
report: "workflow/report/workflow.rst"


# Checked against this machine (devices, cores; device: auto and precision native16 resolved)
# only where the jobs run here: a cluster's login node is not the machine that measures. The
# Snakefile is read before Snakemake picks the executor (workflow.local_exec is still True
# then), but a cluster executor needs --jobs (the profiles set `jobs:`), which a local run
# folds into --cores: a job count means the jobs are submitted elsewhere.
JOBS_RUN_HERE = (
    workflow.local_exec
    and not workflow.remote_exec
    and workflow.resource_settings.nodes is None
)
MACHINE = Machine() if JOBS_RUN_HERE else None
try:
    # Snakemake's YAML loader keeps the last of a duplicated key: read each --configfile too.
    for path in workflow.overwrite_configfiles:
        dbconfig.read_yaml(path)
    CFG = dbconfig.validate(config, MACHINE)
except dbconfig.ConfigError as error:
    raise SystemExit(f"dualbench: config error: {error}")
for line in CFG["resolved"]["notes"] + CFG["resolved"]["warnings"]:
    print(f"dualbench: {line}", file=sys.stderr)


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"


# Cheap bookkeeping: on a cluster these run where Snakemake runs, not as submitted jobs.
localrules:
    all,
    aggregate,
    report,


rule all:
    default_target: True
    input:
        rules.report.output,
