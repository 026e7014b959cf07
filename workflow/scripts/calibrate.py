# Thin adapter: rule calibrate -> dualbench.measure.calibration.calibrate_to_file
import json
from pathlib import Path

from dualbench.config import exclusivity_policy
from dualbench.errors import user_errors_exit
from dualbench.job_log import tee_stderr
from dualbench.measure.calibration import calibrate_to_file
from dualbench.measure.lifetime import exit_on_signals

spec = json.loads(snakemake.params.spec)
with tee_stderr(snakemake.log.calibrate), user_errors_exit(), exit_on_signals():
    # Read from the config, not the params: editing run.exclusivity must recalibrate nothing.
    policy = exclusivity_policy(snakemake.config)
    calibrate_to_file(spec, Path(snakemake.output[0]), Path(snakemake.log.probes), policy)
