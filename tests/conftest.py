"""Session fixtures: the full pipeline runs once on the tiny config; the cache tests dry-run
edits against it and the end-to-end tests read its results."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, snakemake, tiny_config


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """A work directory after one complete `snakemake report` on the tiny config."""
    workdir = make_workdir(tmp_path_factory.mktemp("pipeline"), tiny_config())
    snakemake(workdir, "report")
    return workdir
