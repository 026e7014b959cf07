"""What a measuring job asks a cluster for, from the config's slots (dualbench.config.cluster),
and that the rules carry it."""

from __future__ import annotations

import pytest

from dualbench import config
from dualbench.config import ConfigError
from tests.helpers import make_workdir, snakemake, tiny_config


def validated(**changes) -> dict:
    cfg = tiny_config()
    cfg["device"] = "auto"  # the tiny config says cpu
    cfg.update(changes)
    return config.validate(cfg)  # no machine: as on a cluster's login node


@pytest.mark.parametrize(
    ("changes", "resources"),
    [
        ({"device": "cpu"}, {}),
        ({"slots": ["cpu:0", "cpu:1"]}, {}),
        # device: auto is not resolved on a login node: no kind, no request
        ({}, {}),
        ({"device": "npu"}, {"gres": "npu:2"}),
        ({"device": "cuda"}, {"gpu": 2}),
        ({"slots": ["npu:0", "npu:1"]}, {"gres": "npu:2"}),
        # an allocation of n devices shows indices 0..n-1: npu:3 needs four
        ({"slots": ["npu:3", "npu:1"]}, {"gres": "npu:4"}),
        ({"slots": ["npu:0", "npu:0"]}, {"gres": "npu:1"}),
        (
            {
                "slots": {
                    "A": {"device": "npu:0", "core_limit": {"cube": 8, "vector": 16}},
                    "B": "npu:1",
                }
            },
            {"gres": "npu:2"},
        ),
        ({"slots": ["cuda:0", "cuda:2"]}, {"gpu": 3}),
        (
            {"slots": ["npu:0", "npu:1"], "cluster": {"npu_gres": "npu:910b"}},
            {"gres": "npu:910b:2"},
        ),
    ],
)
def test_devices_become_scheduler_resources(changes, resources):
    assert config.scheduler_resources(validated(**changes)) == resources


def test_three_models_on_auto_npu_slots_ask_for_three():
    cfg = tiny_config()
    cfg["models"]["C"] = {"source": "synthetic:llama-3.2-tiny", "seed": 2}
    cfg["device"] = "npu"
    assert config.scheduler_resources(config.validate(cfg)) == {"gres": "npu:3"}


@pytest.mark.parametrize("name", ["npu 2", "npu:", ":npu", "npu:2:3"])
def test_a_gres_name_that_slurm_would_reject_is_refused(name):
    with pytest.raises(ConfigError, match=r"^cluster\.npu_gres"):
        validated(cluster={"npu_gres": name})


def test_measuring_rules_carry_the_request(tmp_path):
    """What Snakemake hands the executor: a dry run with the Slurm executor prints each job's
    resources (fetch and convert ask for no device)."""
    cfg = tiny_config()
    cfg.update(device="npu", slots=["npu:0", "npu:1"])
    workdir = make_workdir(tmp_path, cfg)
    printed = snakemake(workdir, "-n", "--executor", "slurm", "--jobs", "1", "report").stdout
    jobs = printed.split("\nrule ")[1:]
    requests = {job.split(":")[0]: "gres=npu:2" in job for job in jobs}
    assert requests == {
        "fetch_model": False,
        "convert": False,
        "calibrate": True,
        "session": True,
        "aggregate": False,
        "report": False,
    }


def test_the_gres_name_is_no_cache_key():
    """Resources are not a rerun trigger, and the name is in no rule's params."""
    plain = validated(slots=["npu:0", "npu:1"])
    typed = validated(slots=["npu:0", "npu:1"], cluster={"npu_gres": "npu:910b"})
    for params in (
        lambda c: config.session_params(c, "short", "bf16"),
        lambda c: config.calibration_params(c, "A", "bfloat16"),
        config.aggregate_params,
        config.report_params,
    ):
        assert params(plain) == params(typed)
