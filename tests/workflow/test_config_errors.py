"""A config a user got wrong stops Snakemake before any job runs, with one line naming the key.

Each case runs the real `snakemake report` (not a dry run), so "no job ran" is observed: no
results directory exists afterwards."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import make_workdir, snakemake, tiny_config, write_config


def broken(path: tuple[str, ...], value, cfg: dict | None = None):
    cfg = cfg or tiny_config()
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
        (
            broken(("scenarios", "short", "trial_s"), float("nan")),
            "scenarios.short.trial_s: nan is not a finite number",
        ),
        (broken(("run", "timeout_s"), float("inf")), "run.timeout_s: inf is not a finite"),
        (broken(("run", "timeout_s"), float("nan")), "run.timeout_s: nan is not a finite"),
        (
            broken(("models", "B", "source"), "local:/nonexistent/llama"),
            "models.B.source: model source 'local:/nonexistent/llama': /nonexistent/llama is "
            "not a directory",
        ),
        (broken(("models", "A", "source"), "hf:org/repo@"), "has an empty revision after @"),
        (
            broken(("models", "A", "source"), "synthetic: llama-3.2-tiny"),
            "write synthetic:llama-3.2-tiny",
        ),
        (broken(("slots",), ["cpu:0", "cpu:4096"]), "slots: cpu:4096 names cores 4096 outside"),
        # CI has no GPU, so no nvidia-smi; where one is installed its GPU count is the reason.
        (
            broken(("slots",), ["cuda:3", "cuda:3"], broken(("device",), "auto")),
            ("nvidia-smi is not installed", "slots: cuda:3 does not exist"),
        ),
        (broken(("device",), "npu"), "device: npu needs torch_npu"),
    ],
)
def test_bad_config_fails_before_any_job_with_one_line(tmp_path, config, expected):
    workdir = make_workdir(tmp_path, config)
    assert_refused(workdir, expected)


def assert_refused(workdir, expected: str | tuple[str, ...]) -> None:
    proc = snakemake(workdir, "report", check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("dualbench: config error")]
    alternatives = (expected,) if isinstance(expected, str) else expected
    assert len(lines) == 1 and any(e in lines[0] for e in alternatives), proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert not (workdir / "results").exists()


def test_duplicated_yaml_key_fails_before_any_job(tmp_path):
    text = yaml.safe_dump(tiny_config(), sort_keys=False)
    text = text.replace("  short:\n", "  short:\n    trial_s: 3.0\n", 1)
    workdir = make_workdir(tmp_path, tiny_config())
    write_config(workdir, text)
    assert_refused(workdir, "key 'trial_s' is given twice")


def test_duplicated_key_in_an_extra_configfile_fails(tmp_path):
    workdir = make_workdir(tmp_path, tiny_config())
    (workdir / "extra.yaml").write_text("notes: a\nnotes: b\n")
    proc = snakemake(workdir, "report", "--configfile", "extra.yaml", check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("dualbench: config error")]
    assert len(lines) == 1 and "extra.yaml line 2: key 'notes' is given twice" in lines[0]
    assert not (workdir / "results").exists()


def test_missing_key_names_it(tmp_path):
    cfg = tiny_config()
    del cfg["precisions"]
    proc = snakemake(make_workdir(tmp_path, cfg), "-n", "report", check=False)
    assert "dualbench: config error: missing key precisions" in proc.stdout
