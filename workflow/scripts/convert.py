# Thin adapter: rule convert -> dualbench.models.convert.convert
import json

from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.models.convert import convert

spec = json.loads(snakemake.params.spec)
with tee_stderr(snakemake.log[0]), user_errors_exit():
    convert(snakemake.input[0], spec["precision"], snakemake.output[0], spec.get("int4"))
