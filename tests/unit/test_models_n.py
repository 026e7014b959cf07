"""Any number of models: names, slots, the layout grammar and the run specs they make
(issue 12). Each user mistake is one ConfigError line naming the key and the fix."""

from __future__ import annotations

import os

import pytest

from dualbench import config
from dualbench.backends import resolve
from dualbench.config import ConfigError
from dualbench.config.vocabulary import (
    default_layouts,
    group_layout,
    is_group,
    layout_kind,
    layout_schedule,
)
from dualbench.hardware import Accelerator
from tests.helpers import fake_machine

TINY = "synthetic:llama-3.2-tiny"


def three() -> dict:
    return {
        "models": {name: {"source": TINY, "seed": i} for i, name in enumerate("CAB")},
        "precisions": ["bf16"],
        "scenarios": {"s": {"prompt_tokens": 8}},
    }


def error_of(mutate, machine=None) -> str:
    cfg = three()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        config.validate(cfg, machine)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- names and layouts ------------------------------------------------------------------------


def test_three_models_sorted_with_default_layouts():
    cfg = config.validate(three())
    # YAML order C, A, B: names are sorted, so reordering the models reruns nothing.
    assert config.model_names(cfg) == ("A", "B", "C")
    assert cfg["layouts"] == ["alone_A", "alone_B", "alone_C", "colocated"]


def test_one_model_runs_alone_only():
    cfg = three()
    cfg["models"] = {"solo": {"source": TINY}}
    assert config.validate(cfg)["layouts"] == ["alone_solo"]
    cfg["layouts"] = ["alone_solo", "colocated"]
    with pytest.raises(ConfigError, match="colocated runs models side by side but models"):
        config.validate(cfg)


def test_layout_grammar():
    names = ("A", "B", "C")
    assert default_layouts(names) == ["alone_A", "alone_B", "alone_C", "colocated"]
    assert group_layout("colocated", ("B", "A"), names) == "colocated:A+B"
    assert group_layout("lockstep", names, names) == "lockstep"
    assert config.layout_slots("colocated:A+C", names) == ("A", "C")
    assert config.layout_slots("single_thread_streams", names) == names
    assert [layout_kind(x) for x in ("alone_B", "lockstep:A+B", "colocated")] == [
        "alone",
        "lockstep",
        "colocated",
    ]
    assert [
        layout_schedule(x) for x in ("alone_A", "colocated", "lockstep", "single_thread_streams")
    ] == [
        "free",
        "free",
        "lockstep",
        "single_thread",
    ]
    assert not is_group("alone_A") and is_group("colocated:A+B")


@pytest.mark.parametrize(
    ("layouts", "message"),
    [
        (["alone_D"], "layout 'alone_D' is unknown"),
        (["colocated:A+D"], "names model 'D', which models does not define"),
        (["colocated:B+A"], "write its models in sorted order, colocated:A+B"),
        (["colocated:A"], "must name two or more different models"),
        (["colocated:A+A"], "must name two or more different models"),
        (["colocated", "colocated:A+B+C"], "colocated:A+B+C and colocated are the same runs"),
        (["together"], "layout 'together' is unknown"),
    ],
)
def test_layout_errors(layouts, message):
    assert message in error_of(lambda c: c.update(layouts=layouts))


def test_subset_lockstep_and_single_thread_layouts_are_accepted():
    layouts = ["alone_A", "alone_B", "colocated:A+B", "lockstep:A+B", "single_thread_streams"]
    assert config.validate({**three(), "layouts": layouts})["layouts"] == layouts


@pytest.mark.parametrize("name", ["model_a", "1A", "A+B", "a" * 17])
def test_bad_model_names(name):
    message = error_of(lambda c: c["models"].update({name: {"source": TINY}}))
    assert "is not a model name" in message and "letters and digits" in message


def test_scenario_override_for_unknown_model():
    message = error_of(lambda c: c["scenarios"]["s"].update(slots={"D": {"batch_size": 2}}))
    assert message == "scenarios.s.slots.D: no model is named D; use one of A, B, C"


def test_sweep_names_must_be_models():
    message = error_of(lambda c: c["scenarios"]["s"].update(sweep={"victim": "D"}))
    assert message.startswith("scenarios.s.sweep.victim: no model is named D")
    cfg = config.validate({**three(), "scenarios": {"s": {"prompt_tokens": 8, "sweep": {}}}})
    assert cfg["scenarios"]["s"]["sweep"]["victim"] == "A"
    assert cfg["scenarios"]["s"]["sweep"]["neighbour"] == "B"


@pytest.mark.parametrize("layout", ["lockstep", "single_thread_streams:A+B"])
def test_turn_taking_layouts_refuse_open_loop_slots(layout):
    def mutate(c):
        c["layouts"] = ["alone_A", layout]
        c["scenarios"]["s"]["slots"] = {"B": {"arrival": {"rate_rps": 1}}}

    message = error_of(mutate)
    assert f"slot B has open-loop arrivals, which layout {layout} cannot drive" in message


# --- slots -------------------------------------------------------------------------------------


def test_slots_list_needs_one_device_per_model():
    message = error_of(lambda c: c.update(slots=["cpu:0", "cpu:1"]))
    assert message == (
        "slots: 2 devices for 3 models (A, B, C); list one device per model in sorted name "
        "order, or use auto"
    )


def test_slots_mapping_names_every_model():
    assert "model C has no slot; add slots.C" in error_of(
        lambda c: c.update(slots={"A": "cpu:0", "B": "cpu:1"})
    )
    assert "slots.D: no model is named D" in error_of(
        lambda c: c.update(slots={"A": "cpu:0", "B": "cpu:1", "C": "cpu:0", "D": "cpu:1"})
    )


def test_slots_list_and_mapping_mean_the_same():
    by_list = config.validate({**three(), "slots": ["cpu:0", "cpu:1", "cpu:0"]})
    by_map = config.validate(
        {**three(), "slots": {"C": "cpu:0", "A": "cpu:0", "B": {"device": "cpu:1"}}}
    )
    assert by_list["slots"] == by_map["slots"]
    assert config.run_params(by_list, "s", "bf16", "colocated") == config.run_params(
        by_map, "s", "bf16", "colocated"
    )


def test_core_limit_only_on_npu_slots():
    message = error_of(
        lambda c: c.update(
            slots={
                "A": {"device": "cpu:0", "core_limit": {"cube": 1, "vector": 2}},
                "B": "cpu:1",
                "C": "cpu:1",
            }
        )
    )
    assert message.startswith("slots.A.core_limit: core limits split an Ascend NPU's AI cores")


def test_core_limit_reaches_the_run_spec():
    cfg = three()
    limit = {"cube": 12, "vector": 24}
    cfg["slots"] = {name: {"device": "npu:0", "core_limit": limit} for name in "ABC"}
    cfg = config.validate(cfg)
    spec = config.run_spec(cfg, "s", "bf16", "alone_B")
    assert spec["slots"]["B"]["core_limit"] == limit
    assert spec["slots"]["B"]["device"] == "npu:0"
    assert "slot_names" not in spec  # explicit slots: the device is in the spec


# --- run specs ---------------------------------------------------------------------------------


def test_run_specs_of_every_layout_kind():
    cfg = config.validate(
        {**three(), "layouts": ["alone_A", "colocated:A+C", "lockstep", "single_thread_streams"]}
    )
    alone = config.run_spec(cfg, "s", "bf16", "alone_A")
    pair = config.run_spec(cfg, "s", "bf16", "colocated:A+C")
    turns = config.run_spec(cfg, "s", "bf16", "lockstep")
    thread = config.run_spec(cfg, "s", "bf16", "single_thread_streams")
    assert list(pair["slots"]) == ["A", "C"]
    assert list(turns["slots"]) == list(thread["slots"]) == ["A", "B", "C"]
    # Free layouts carry no schedule: their cache keys are what they were before.
    assert "schedule" not in alone and "schedule" not in pair
    assert turns["schedule"] == "lockstep" and thread["schedule"] == "single_thread"
    # Auto slots: where a model runs depends on how many models share the machine.
    assert alone["slot_names"] == ["A", "B", "C"]


def test_sweep_among_three_runs_the_pair_only():
    cfg = three()
    cfg["scenarios"]["s"]["sweep"] = {"victim": "C", "neighbour": "A", "fractions": [0, 0.5, 1]}
    trials = config.sweep_trials(config.validate(cfg), "s", "bf16")
    assert trials["sweep/f0"]["layout"] == "alone_C"
    assert trials["sweep/f1"]["layout"] == "colocated:A+C"  # the pair, spelled as a subset
    assert list(trials["sweep/f1"]["slots"]) == ["A", "C"]


# --- the machine --------------------------------------------------------------------------------


def test_three_models_on_two_cores_are_noted_as_oversubscribed():
    cfg = config.validate(three(), fake_machine(cores=(0, 1)))
    (note,) = [n for n in cfg["resolved"]["notes"] if n.startswith("slots:")]
    assert "3 models on 2 usable cores" in note and "oversubscribed" in note
    cfg = config.validate(three(), fake_machine(cores=(0, 1, 2, 3)))
    assert not [n for n in cfg["resolved"]["notes"] if n.startswith("slots:")]


def test_three_models_on_two_gpus_share_in_turn():
    gpus = [Accelerator(i, "GPU", (9, 0)) for i in range(2)]
    machine = fake_machine(cuda=gpus, cpu_only_torch=False)
    cfg = config.validate({**three(), "device": "cuda"}, machine)
    assert any("3 models on 2 cuda device(s)" in n for n in cfg["resolved"]["notes"])


def test_auto_slots_of_three_models_on_two_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    spec = config.run_spec(config.validate(three(), fake_machine()), "s", "bf16", "alone_C")
    _, slots = resolve(spec["device"], "auto", spec["slot_names"])
    # Fewer cores than models: every slot shares both (the note above says so).
    assert {name: s.cores for name, s in slots.items()} == {n: (0, 1) for n in "ABC"}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    _, slots = resolve(spec["device"], "auto", spec["slot_names"])
    assert [slots[n].cores for n in "ABC"] == [(0, 1), (2, 3), (4, 5)]


def test_core_limits_refuse_the_single_thread_layout():
    def mutate(c):
        c["slots"] = {
            n: {"device": "npu:0", "core_limit": {"cube": 8, "vector": 16}} for n in "ABC"
        }
        c["layouts"] = ["alone_A", "single_thread_streams"]

    message = error_of(mutate)
    assert message.startswith("layouts: single_thread_streams runs its models in one process")
