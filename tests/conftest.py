"""Session fixtures: the full pipeline runs once on the tiny config, and once more in repeat
blocks; the cache tests dry-run edits against them and the end-to-end tests read their
results."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, repeats_config, reuse_results, snakemake, tiny_config


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """A work directory after one complete `snakemake report` on the tiny config."""
    workdir = make_workdir(tmp_path_factory.mktemp("pipeline"), tiny_config())
    snakemake(workdir, "report")
    return workdir


@pytest.fixture(scope="session")
def pipeline_repeats(pipeline, tmp_path_factory) -> Path:
    """A work directory after `snakemake report` on one tiny scenario in three repeat
    blocks, bf16 and int4 (tests.helpers.repeats_config), with the tiny pipeline's models and
    calibration."""
    workdir = make_workdir(tmp_path_factory.mktemp("repeats"), repeats_config())
    reuse_results(pipeline, workdir, "models", "calibration")
    snakemake(workdir, "report")
    return workdir
