"""A config a user got wrong stops Snakemake before any job runs, with one line naming the key."""

from __future__ import annotations

import pytest

from tests.helpers import make_workdir, snakemake, tiny_config


def broken(path: tuple[str, ...], value):
    cfg = tiny_config()
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return cfg


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            broken(("scenarios", "short", "batch_size"), 0),
            "scenarios.short.batch_size: 0 is less than the minimum of 1",
        ),
        (
            broken(("scenarios", "short", "prompt_tokens"), "many"),
            "scenarios.short.prompt_tokens: 'many' is not of type 'integer'",
        ),
        (
            broken(("scenarios", "short", "promt_tokens"), 5),
            "unknown key scenarios.short.promt_tokens",
        ),
        (
            broken(("scenarios", "short", "prompt_tokens"), 200_000),
            "exceeds the context of model A (131072 tokens)",
        ),
        (broken(("device",), "tpu"), "device: 'tpu' is not one of"),
        (broken(("models", "A", "source"), "llama"), "models.A.source: 'llama' is not a model"),
    ],
)
def test_bad_config_fails_before_any_job_with_one_line(tmp_path, config, expected):
    workdir = make_workdir(tmp_path, config)
    proc = snakemake(workdir, "-n", "report", check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("dualbench: config error")]
    assert len(lines) == 1 and expected in lines[0], proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert not (workdir / "results").exists()


def test_missing_key_names_it(tmp_path):
    cfg = tiny_config()
    del cfg["precisions"]
    proc = snakemake(make_workdir(tmp_path, cfg), "-n", "report", check=False)
    assert "dualbench: config error: missing key precisions" in proc.stdout
