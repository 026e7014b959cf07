"""The config of open-loop arrivals, contention sweeps and calibration: validation (one line,
naming the key), and what the sweep, run and calibration specs hold."""

from __future__ import annotations

import copy

import pytest

from dualbench import config
from dualbench.config import ConfigError

TINY = "synthetic:llama-3.2-tiny"


def base() -> dict:
    return {
        "models": {"A": {"source": TINY}, "B": {"source": TINY}},
        "precisions": ["bf16", "int4"],
        "scenarios": {
            "s": {"prompt_tokens": 8, "sweep": {"fractions": [0, 0.5, 1]}},
            "t": {"prompt_tokens": 8},
        },
    }


def error_of(edit) -> str:
    cfg = base()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        config.validate(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("edit", "must_contain"),
    [
        (
            lambda c: c["scenarios"]["s"]["sweep"].update(fractions=[0.5, 1, 2]),
            ["scenarios.s.sweep.fractions", "lacks 0", "add 0"],
        ),
        (
            lambda c: c["scenarios"]["s"]["sweep"].update(victim="B", neighbour="B"),
            ["scenarios.s.sweep", "both B"],
        ),
        (
            lambda c: c.update(layouts=["alone_A", "colocated"]),
            ["scenarios.s.sweep", "alone_B", "add alone_B to layouts"],
        ),
        (
            lambda c: c["scenarios"]["s"]["sweep"].update(fractions=[0, 1]),
            ["scenarios.s.sweep.fractions"],
        ),
        (
            lambda c: c["scenarios"]["t"].update(arrival={"rate_rps": 2, "burstiness": 0.5}),
            ["scenarios.t.arrival", "burstiness 0.5", "process gamma"],
        ),
        (
            lambda c: c["scenarios"]["t"].update(slots={"B": {"arrival": {"rate_rps": 0}}}),
            ["scenarios.t.slots.B.arrival"],
        ),
        (
            lambda c: c["scenarios"]["t"].update(arrival={"process": "uniform", "rate_rps": 1}),
            ["scenarios.t.arrival"],
        ),
        (lambda c: c.update(calibration={"repeats": 2}), ["calibration.repeats"]),
        (lambda c: c.update(calibration={"copy_mib": "big"}), ["calibration.copy_mib"]),
    ],
    ids=[
        "no-zero",
        "same-slot",
        "no-neighbour-alone",
        "too-few-points",
        "poisson-burstiness",
        "zero-rate",
        "unknown-process",
        "few-repeats",
        "bad-size",
    ],
)
def test_one_line_errors_name_the_key(edit, must_contain):
    message = error_of(edit)
    for part in must_contain:
        assert part in message, (part, message)


def test_sweep_defaults_the_neighbour_to_the_other_slot():
    cfg = config.validate(base())
    sweep = cfg["scenarios"]["s"]["sweep"]
    assert (sweep["victim"], sweep["neighbour"], sweep["process"]) == ("A", "B", "poisson")
    assert cfg["scenarios"]["t"]["sweep"] is None
    assert cfg["calibration"] == {"repeats": 10, "copy_mib": "auto", "matmul_n": "auto"}


def test_a_closed_loop_slot_has_no_arrival_key_so_its_runs_keep_their_cache_keys():
    cfg = config.validate(base())
    assert "arrival" not in config.slot_settings(cfg, "t", "A")
    raw = base()
    raw["scenarios"]["t"]["arrival"] = {"rate_rps": 2}
    raw["scenarios"]["t"]["slots"] = {"A": {"arrival": None}}
    cfg = config.validate(raw)
    assert "arrival" not in config.slot_settings(cfg, "t", "A")  # null: closed loop
    assert config.slot_settings(cfg, "t", "B")["arrival"] == {
        "process": "poisson",
        "rate_rps": 2,
        "burstiness": 1,
        "max_backlog": 0.1,
    }


def test_sweep_trials_point_victim_and_neighbour():
    cfg = config.validate(base())
    trials = config.sweep_trials(cfg, "s", "bf16")
    assert list(trials) == ["sweep/f0", "sweep/f0.5", "sweep/f1"]
    alone = trials["sweep/f0"]
    assert alone["layout"] == "alone_A" and list(alone["slots"]) == ["A"]
    loaded = trials["sweep/f0.5"]
    assert loaded["layout"] == "colocated:A+B"  # the pair as a subset: stable as models are added
    assert "arrival" not in loaded["slots"]["A"]  # the victim runs closed-loop
    arrival = loaded["slots"]["B"]["arrival"]
    assert arrival["process"] == "poisson" and arrival["rate_rps"] is None
    assert loaded["sweep"] == {"victim": "A", "neighbour": "B", "fraction": 0.5}


def test_a_sessions_trials_are_its_layouts_then_its_sweep_points_each_round_reordered():
    """Every round runs every trial once, in the seeded order of its number; round 1 runs
    the neighbour alone before the first loaded sweep point (its capacity sets their rate)."""
    from dualbench.measure.rounds import round_order

    cfg = config.validate(base())
    session = config.session_spec(cfg, "s", "bf16")
    assert list(session["trials"]) == [*cfg["layouts"], "sweep/f0", "sweep/f0.5", "sweep/f1"]
    orders = [round_order(session, r) for r in range(1, 7)]
    assert orders == [round_order(session, r) for r in range(1, 7)]  # seeded
    assert all(sorted(o) == sorted(session["trials"]) for o in orders)
    assert len({tuple(o) for o in orders}) == 6
    first = orders[0]
    assert first.index("alone_B") < min(first.index("sweep/f0.5"), first.index("sweep/f1"))


def test_a_victim_scenario_arrival_does_not_reach_the_sweep():
    raw = base()
    raw["scenarios"]["s"]["arrival"] = {"rate_rps": 3}
    trials = config.sweep_trials(config.validate(raw), "s", "bf16")
    assert "arrival" not in trials["sweep/f1"]["slots"]["A"]
    assert trials["sweep/f1"]["slots"]["B"]["arrival"]["rate_rps"] is None


def test_calibration_spec_reads_slots_dtype_and_settings_only():
    cfg = config.validate(base())
    assert config.calibration_dtypes(cfg) == ["bfloat16"]  # bf16 and int4 compute in bf16
    spec = config.calibration_spec(cfg, "B", "bfloat16")
    assert spec["slot"] == "B" and spec["slots"] == "auto" and spec["names"] == ["A", "B"]
    assert spec["copy_bytes"] is None and spec["matmul_n"] is None and spec["repeats"] == 10
    raw = copy.deepcopy(base())
    raw["scenarios"]["s"]["prompt_tokens"] = 16
    raw["models"]["A"]["seed"] = 5
    raw["precisions"] = ["bf16"]
    same = config.calibration_params(config.validate(raw), "B", "bfloat16")
    assert same == config.calibration_params(cfg, "B", "bfloat16")
    raw["calibration"] = {"copy_mib": 64, "matmul_n": 256}
    sized = config.calibration_spec(config.validate(raw), "B", "bfloat16")
    assert (sized["copy_bytes"], sized["matmul_n"]) == (64 * 2**20, 256)
    raw["slots"] = ["cpu:0", "cpu:1"]
    placed = config.calibration_spec(config.validate(raw), "B", "bfloat16")
    assert placed["slots"] == {"A": "cpu:0", "B": "cpu:1"}


def test_check_config_counts_the_sweep_runs_and_calibrations(tmp_path, capsys):
    import yaml

    from dualbench.cli import main

    raw = base()
    raw["scenarios"]["s"]["rounds"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(path)]) in (0, None)
    # 2 scenarios x 2 precisions; a round: 3 layouts each, and s's sweep 3 points, per
    # precision; bf16 and int4 both compute in bfloat16: 2 slots x 1 dtype
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith("valid (4 sessions, 18 trials a round, rounds 2, auto; 2 calibrations)")
    )
