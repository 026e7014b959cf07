"""The cache contract (DESIGN §4): after a complete run, each config edit reschedules exactly
the jobs that read what changed, and nothing else."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import planned_jobs, tiny_config, write_config

LAYOUTS = ("alone_A", "alone_B", "colocated")
AGG_REPORT = {
    ("aggregate", "results/metrics/runs.csv"),
    ("report", "results/report/report.html"),
}


PRECISIONS = ("bf16", "int4")  # tests.helpers.TINY_CONFIG


def runs(scenario: str, precisions=PRECISIONS, layouts=LAYOUTS) -> set[tuple[str, str]]:
    return {
        ("run", f"results/runs/{scenario}/{precision}/{lay}/run.json")
        for precision in precisions
        for lay in layouts
    }


def converts(models="AB", precisions=PRECISIONS) -> set[tuple[str, str]]:
    return {("convert", f"results/models/{m}/{p}") for m in models for p in precisions}


@pytest.fixture
def edit(pipeline):
    """Write an edited config into the finished pipeline, dry-run, restore the original."""

    def dry_run_with(config) -> set[tuple[str, str]]:
        write_config(pipeline, config)
        return planned_jobs(pipeline) - {("all", "")}

    yield dry_run_with
    write_config(pipeline, tiny_config())


def test_complete_run_has_nothing_to_do(pipeline, edit):
    assert edit(tiny_config()) == set()


def test_one_scenario_prompt_length_reruns_only_that_scenario(edit):
    cfg = tiny_config()
    cfg["scenarios"]["short"]["prompt_tokens"] = 24
    assert edit(cfg) == runs("short") | AGG_REPORT


def test_one_slot_override_reruns_only_runs_with_that_slot(edit):
    cfg = tiny_config()
    cfg["scenarios"]["mixed"]["slots"]["B"]["prompt_tokens"] = 80
    assert edit(cfg) == runs("mixed", layouts=("alone_B", "colocated")) | AGG_REPORT


def test_report_title_reruns_only_the_report(edit):
    cfg = tiny_config()
    cfg["report"]["title"] = "another title"
    assert edit(cfg) == {("report", "results/report/report.html")}


def test_model_source_reruns_everything_downstream_of_that_model(edit):
    cfg = tiny_config()
    cfg["models"]["A"]["seed"] = 7
    expected = {
        ("fetch_model", "results/models/A/base"),
        *converts("A"),
        *runs("short", layouts=("alone_A", "colocated")),
        *runs("mixed", layouts=("alone_A", "colocated")),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_both_model_sources_rerun_everything(edit):
    cfg = tiny_config()
    for slot in ("A", "B"):
        cfg["models"][slot]["source"] = "synthetic:llama-3.2-mini"
    expected = {
        *(("fetch_model", f"results/models/{s}/base") for s in "AB"),
        *converts(),
        *runs("short"),
        *runs("mixed"),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_adding_a_precision_runs_only_its_conversion_and_runs(edit):
    cfg = tiny_config()
    cfg["precisions"] = [*PRECISIONS, "fp16"]
    expected = {
        *converts(precisions=["fp16"]),
        *runs("short", ["fp16"]),
        *runs("mixed", ["fp16"]),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_int4_scheme_rebuilds_only_the_int4_artifacts_and_their_runs(edit):
    cfg = tiny_config()
    cfg["int4"] = {"group_size": 64}
    expected = {
        *converts(precisions=["int4"]),
        *runs("short", ["int4"]),
        *runs("mixed", ["int4"]),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_int4_kernel_reruns_only_the_int4_runs(edit):
    cfg = tiny_config()
    cfg["int4"] = {"kernel": "reference"}
    assert edit(cfg) == runs("short", ["int4"]) | runs("mixed", ["int4"]) | AGG_REPORT


def test_a_key_no_rule_reads_reruns_nothing(edit):
    cfg = tiny_config()
    cfg["notes"] = "rerun nothing, please"
    assert edit(cfg) == set()


def test_writing_a_default_explicitly_reruns_nothing(edit):
    cfg = tiny_config()
    cfg["scenarios"]["short"]["batch_size"] = 1  # the schema default
    cfg["allocator"] = ""
    assert edit(cfg) == set()


def test_reordering_and_reformatting_the_yaml_reruns_nothing(edit):
    cfg = tiny_config()
    reordered = {key: cfg[key] for key in reversed(list(cfg))}
    reordered["scenarios"] = {
        name: dict(reversed(list(sc.items()))) for name, sc in reversed(cfg["scenarios"].items())
    }
    text = "# a comment\n\n" + yaml.safe_dump(reordered, default_flow_style=True, width=60)
    assert edit(text) == set()


def test_allocator_on_a_cpu_config_reruns_nothing(edit):
    cfg = tiny_config()
    cfg["allocator"] = "expandable_segments:True"  # only accelerator workers read it
    assert edit(cfg) == set()
