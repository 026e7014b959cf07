# Thin adapter: rule convert -> dualbench.convert.convert
import json

from dualbench.cli import user_errors_exit
from dualbench.convert import convert

spec = json.loads(snakemake.params.spec)
with user_errors_exit():
    convert(snakemake.input[0], spec["precision"], snakemake.output[0], spec.get("int4"))
