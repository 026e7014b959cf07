"""The cluster tests' shared fixture: one real Slurm node for the whole session."""

from __future__ import annotations

import os

import pytest

from tests.cluster.slurm_cluster import ClusterUnavailable, SlurmCluster


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> SlurmCluster:
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as why:
        # CI sets this: there the cluster tests must run, never skip.
        if os.environ.get("DUALBENCH_REQUIRE_SLURM"):
            pytest.fail(f"no Slurm test cluster, and DUALBENCH_REQUIRE_SLURM is set: {why}")
        pytest.skip(f"no Slurm test cluster: {why}")
    yield cluster
    cluster.stop()
