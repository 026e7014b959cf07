"""The cache contract (DESIGN §4): after a complete run, each config edit reschedules exactly
the jobs that read what changed, and nothing else. The unit of measurement is a session (every
round of every layout and sweep point of a scenario and precision, interleaved on warm
workers): an edit that changes one of its trials reruns the session, so its alone and
co-located trials stay side by side in time. An INT4 session reads the dense session of its
scenario (INT4's ratios are judged against it), so it follows that one."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import planned_jobs, tiny_config, write_config

AGG_REPORT = {
    ("aggregate", "results/metrics/runs.csv"),
    ("report", "results/report/report.html"),
}


PRECISIONS = ("bf16", "int4")  # tests.helpers.TINY_CONFIG


def sessions(scenario: str, precisions=PRECISIONS) -> set[tuple[str, str]]:
    """Session jobs, named by their output folder."""
    return {("session", f"results/sessions/{scenario}/{precision}") for precision in precisions}


def calibrations(dtypes=("bfloat16",), slots="AB") -> set[tuple[str, str]]:
    return {("calibrate", f"results/calibration/{s}/{d}.json") for s in slots for d in dtypes}


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
    assert edit(cfg) == sessions("short") | AGG_REPORT


def test_one_slot_override_reruns_only_that_scenarios_sessions(edit):
    cfg = tiny_config()
    cfg["scenarios"]["mixed"]["slots"]["B"]["prompt_tokens"] = 80
    assert edit(cfg) == sessions("mixed") | AGG_REPORT


@pytest.mark.parametrize(
    ("key", "value"),
    [("rounds", 3), ("rounds", "auto"), ("trial_s", 1.5), ("target_half_width", 0.05)],
)
def test_a_scenarios_rounds_or_trial_length_reruns_its_sessions(edit, key, value):
    cfg = tiny_config()
    cfg["scenarios"]["mixed"][key] = value
    assert edit(cfg) == sessions("mixed") | AGG_REPORT


def test_the_analysis_settings_rerun_only_aggregate_and_report(edit):
    cfg = tiny_config()
    cfg["analysis"] = {"equivalence_margin": 0.05}
    assert edit(cfg) == AGG_REPORT


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
        *sessions("short"),
        *sessions("mixed"),
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
        *sessions("short"),
        *sessions("mixed"),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_adding_a_precision_runs_only_its_conversion_and_sessions(edit):
    cfg = tiny_config()
    cfg["precisions"] = [*PRECISIONS, "fp16"]
    expected = {
        *converts(precisions=["fp16"]),
        *sessions("short", ["fp16"]),
        *sessions("mixed", ["fp16"]),
        *calibrations(["float16"]),
        # fp16 is INT4's baseline from now on (the origin note's question), so the INT4
        # sessions, which judge their ratios against it, run again
        *sessions("short", ["int4"]),
        *sessions("mixed", ["int4"]),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_int4_scheme_rebuilds_only_the_int4_artifacts_and_their_runs(edit):
    cfg = tiny_config()
    cfg["int4"] = {"group_size": 64}
    expected = {
        *converts(precisions=["int4"]),
        *sessions("short", ["int4"]),
        *sessions("mixed", ["int4"]),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_int4_kernel_reruns_only_the_int4_runs(edit):
    cfg = tiny_config()
    cfg["int4"] = {"kernel": "reference"}
    expected = sessions("short", ["int4"]) | sessions("mixed", ["int4"])
    assert edit(cfg) == expected | AGG_REPORT


def test_the_exclusivity_policy_reruns_nothing(edit):
    # The measuring jobs read it from Snakemake's config, outside their params: it decides
    # whether a busy job measures, not what a run measures.
    cfg = tiny_config()
    assert cfg["run"]["exclusivity"] != "fail"
    cfg["run"].update(exclusivity="fail", busy_cpu_fraction=0.9)
    assert edit(cfg) == set()


def test_the_clusters_gres_name_reruns_nothing(edit):
    # Read only into the measuring rules' resources, which are no rerun trigger.
    cfg = tiny_config()
    cfg["cluster"] = {"npu_gres": "ascend:910b"}
    assert edit(cfg) == set()


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


def test_allocator_on_a_cpu_config_reruns_only_the_report_that_warns_of_it(edit):
    """Only accelerator workers read the allocator: no measurement reruns. The report does,
    as its hardware notes now carry the one-line warning that the setting has no effect."""
    cfg = tiny_config()
    cfg["allocator"] = "expandable_segments:True"
    assert edit(cfg) == {("report", "results/report/report.html")}


def test_the_rate_grid_reruns_only_its_scenarios_sessions(edit):
    cfg = tiny_config()
    cfg["scenarios"]["short"]["sweep"]["fractions"] = [0, 0.3, 0.6, 0.9]
    assert edit(cfg) == sessions("short") | AGG_REPORT


def test_reordering_the_rate_grid_reruns_nothing(edit):
    cfg = tiny_config()
    cfg["scenarios"]["short"]["sweep"]["fractions"] = [1.0, 0, 0.5]
    assert edit(cfg) == set()


def test_a_sweep_on_another_scenario_reruns_only_its_sessions(edit):
    cfg = tiny_config()
    cfg["scenarios"]["mixed"]["sweep"] = {"victim": "B", "fractions": [0, 0.5, 1]}
    assert edit(cfg) == sessions("mixed") | AGG_REPORT


def test_the_calibration_settings_rerun_only_the_calibration(edit):
    cfg = tiny_config()
    cfg["calibration"]["repeats"] = 5
    assert edit(cfg) == calibrations() | AGG_REPORT


def test_the_slots_devices_rerun_the_calibration_and_every_run(edit):
    cfg = tiny_config()
    cfg["slots"] = ["cpu:1", "cpu:0"]  # A and B swap cores
    expected = calibrations() | sessions("short") | sessions("mixed")
    assert edit(cfg) == expected | AGG_REPORT


def test_adding_a_third_model_runs_its_model_and_what_it_joins(edit):
    """C joins the co-located trial of every session (so each session, measured as a whole,
    reruns) and the contended calibration copy. A's and B's models are not fetched or
    converted again."""
    cfg = tiny_config()
    cfg["models"]["C"] = {"source": "synthetic:llama-3.2-tiny", "seed": 2}
    expected = {
        ("fetch_model", "results/models/C/base"),
        *converts("C"),
        *sessions("short"),
        *sessions("mixed"),
        *calibrations(slots="ABC"),
        *AGG_REPORT,
    }
    assert edit(cfg) == expected


def test_changing_the_schedule_reruns_only_the_sessions(edit):
    """colocated -> lockstep: the sessions' co-located trials change, so each session is
    measured again; models and calibrations do not rerun."""
    cfg = tiny_config()
    cfg["layouts"] = ["alone_A", "alone_B", "lockstep"]
    assert edit(cfg) == sessions("short") | sessions("mixed") | AGG_REPORT
    cfg["layouts"] = ["alone_A", "alone_B", "colocated", "single_thread_streams"]
    assert edit(cfg) == sessions("short") | sessions("mixed") | AGG_REPORT
