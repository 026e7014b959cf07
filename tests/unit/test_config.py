"""Config validation (defaults, one-line errors naming the key) and the cache contract of the
``*_params`` helpers (DESIGN §4): a config edit changes exactly the slices that read it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from dualbench import config
from dualbench.config import ConfigError
from dualbench.hardware import Accelerator
from tests.helpers import fake_machine

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
TINY = "synthetic:llama-3.2-tiny"


def base() -> dict:
    return {
        "models": {"A": {"source": TINY}, "B": {"source": TINY}},
        "precisions": ["bf16"],
        "scenarios": {"s": {"prompt_tokens": 8}},
    }


def error_of(mutate) -> str:
    cfg = base()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        config.validate(cfg)
    return str(info.value)


# --- validation -------------------------------------------------------------------------------


def test_validate_fills_schema_defaults():
    raw = base()
    cfg = config.validate(raw)
    # Without a machine to check against, nothing is resolved: the config's own values stand.
    assert cfg.pop("resolved") == {
        "device": "auto",
        "precisions": ["bf16"],
        "notes": [],
        "warnings": [],
        "cpu": None,
    }
    assert cfg == {
        "notes": "",
        "device": "auto",
        "slots": "auto",
        "allocator": "",
        "models": {
            "A": {"source": TINY, "seed": 0, "trust_remote_code": False},
            "B": {"source": TINY, "seed": 0, "trust_remote_code": False},
        },
        "precisions": ["bf16"],
        "int4": {
            "group_size": 128,
            "symmetric": False,
            "quantize_lm_head": False,
            "kernel": "native",
        },
        "layouts": ["alone_A", "alone_B", "colocated"],
        "scenarios": {
            "s": {
                "description": "",
                "prompt_tokens": 8,
                "new_tokens": 32,
                "batch_size": 1,
                "warmup_requests": 1,
                "min_requests": 3,
                "trial_s": 2,
                "rounds": "auto",
                "target_half_width": 0.03,
                "max_s": 120,
                "seed": 0,
                "arrival": None,
                "sweep": None,
                "slots": {},
            }
        },
        "calibration": {"repeats": 10, "copy_mib": "auto", "matmul_n": "auto"},
        "run": {"timeout_s": 1800, "exclusivity": "fail", "busy_cpu_fraction": 0.5},
        "telemetry": {"enabled": True, "interval_s": 0.2, "idle_s": 2},
        "cluster": {"npu_gres": "npu"},
        "report": {"title": "dualbench: two Llama 3.2 models side by side"},
        "analysis": {"confidence": 0.95, "equivalence_margin": 0.03, "drift_tolerance": 0.1},
    }
    assert raw == base()  # the input is not modified


@pytest.mark.parametrize(("native_bf16", "dtype"), [(True, "bf16"), (False, "fp32")])
def test_default_config_file_validates(native_bf16, dtype):
    cfg = config.load(DEFAULT_CONFIG, fake_machine(native_bf16=native_bf16))
    assert cfg["precisions"] == [dtype, "int4"]  # the quantised deployment, by default
    assert cfg["resolved"]["device"] == "cpu"
    assert list(cfg["scenarios"]) == ["short", "long", "mixed", "peak"]
    assert cfg["models"]["A"]["source"] == "synthetic:llama-3.2-small"
    assert config.slot_settings(cfg, "mixed", "A") == {
        "prompt_tokens": 128,
        "new_tokens": 32,
        "batch_size": 1,
        "warmup_requests": 1,
        "min_requests": 2,
    }
    assert config.slot_settings(cfg, "mixed", "B") == {
        "prompt_tokens": 4096,
        "new_tokens": 16,
        "batch_size": 1,
        "warmup_requests": 1,
        "min_requests": 1,
    }


def _set(path: str, value):
    """A mutation setting the dotted ``path`` of a config dict."""

    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "must_contain"),
    [
        (_set("scenarios.s.prompt_tokens", "8"), ["scenarios.s.prompt_tokens", "integer"]),
        (_set("device", 3), ["device", "auto", "npu"]),
        (_set("bogus", 1), ["unknown key bogus", "remove it", "scenarios"]),
        (_set("scenarios.s.bogus", 1), ["unknown key scenarios.s.bogus", "prompt_tokens"]),
        (_set("scenarios.s.slots.B.bogus", 1), ["unknown key scenarios.s.slots.B.bogus"]),
        (_set("scenarios.s.batch_size", 0), ["scenarios.s.batch_size", "minimum of 1"]),
        (_set("scenarios.s.slots.B.batch_size", 0), ["scenarios.s.slots.B.batch_size"]),
        (
            # 131041 + the default 32 new tokens = 131073 > 131072
            _set("scenarios.s.prompt_tokens", 131041),
            ["scenarios.s", "prompt_tokens", "131073", "131072", "slot A"],
        ),
        (
            _set("scenarios.s.slots", {"B": {"prompt_tokens": 131041}}),
            ["scenarios.s", "131073", "slot B"],
        ),
        (_set("models.A.source", "foo:bar"), ["models.A.source", "'foo:bar'", "synthetic:"]),
        (_set("models.B.source", "hf:"), ["models.B.source", "hf:<repo>"]),
        (_set("precisions", ["bf16", "int8"]), ["precisions.1", "'int8' is not one of"]),
        (_set("slots", ["cpu:0-3", "npu:0"]), ["slots", "mixes device kinds"]),
        (
            lambda c: c.update(slots=["npu:0", "npu:1"], device="cuda"),
            ["slots", "npu", "device is 'cuda'", "set device: npu"],
        ),
        (_set("slots", "cpu"), ["slots", "auto"]),
    ],
    ids=[
        "wrong-type",
        "bad-enum",
        "unknown-top",
        "unknown-scenario-key",
        "unknown-slot-override-key",
        "batch-0",
        "slot-batch-0",
        "prompt-too-long",
        "slot-prompt-too-long",
        "bad-source",
        "empty-source-ref",
        "unknown-precision",
        "mixed-kinds",
        "kind-vs-device",
        "slots-not-a-list",
    ],
)
def test_one_line_errors_name_the_key(mutate, must_contain):
    message = error_of(mutate)
    assert "\n" not in message
    for part in must_contain:
        assert part in message, (part, message)


def test_prompt_exactly_at_the_context_is_accepted():
    cfg = base()
    cfg["scenarios"]["s"].update(prompt_tokens=131040, new_tokens=32)
    assert config.validate(cfg)["scenarios"]["s"]["prompt_tokens"] == 131040


def test_unknown_synthetic_preset_is_one_line():
    message = error_of(_set("models.A.source", "synthetic:nope"))
    assert "\n" not in message
    assert "'synthetic:nope'" in message
    assert "llama-3.2-1b, llama-3.2-3b, llama-3.2-mini, llama-3.2-small, llama-3.2-tiny" in message


def test_unknown_synthetic_preset_names_the_key():
    assert "models.A.source" in error_of(_set("models.A.source", "synthetic:nope"))


def test_bad_slot_device_says_how_to_write_one():
    message = error_of(_set("slots", ["gpu:0", "gpu:1"]))
    assert "\n" not in message
    assert message.startswith("slots")
    assert "npu:0" in message  # an example of a valid device, i.e. the fix


def test_matching_slots_and_device_are_accepted():
    cfg = base()
    cfg.update(slots=["npu:0", "npu:0"], device="npu")
    # A list is read in sorted model-name order and kept as a mapping.
    assert config.validate(cfg)["slots"] == {"A": {"device": "npu:0"}, "B": {"device": "npu:0"}}


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n  a: b\n")
    with pytest.raises(ConfigError) as info:
        config.load(bad)
    assert "\n" not in str(info.value)
    assert "bad.yaml line 3: could not parse YAML" in str(info.value)


def test_unknown_layout():
    with pytest.raises(ConfigError, match="layout 'alone_C' is unknown"):
        config.layout_slots("alone_C", ("A", "B"))
    with pytest.raises(ConfigError, match="layout 'together' is unknown"):
        config.layout_slots("together", ("A", "B"))


# --- cache contract ---------------------------------------------------------------------------

YAML_BLOCK = """\
# block style, keys in schema order
models:
  A:
    source: "synthetic:llama-3.2-tiny"
    seed: 0
  B:
    source: synthetic:llama-3.2-tiny
    seed: 1
precisions: [bf16, fp16]
slots: [cpu:0-3, cpu:4-7]
scenarios:
  short:
    description: "short prompts"
    prompt_tokens: 16
    new_tokens: 4
    trial_s: 2
  long:
    prompt_tokens: 64
    new_tokens: 4
    trial_s: 2
    slots:
      B: {prompt_tokens: 32}
report:
  title: "T"
"""

YAML_FLOW = """\
report: {title: T}
scenarios: {long: {slots: {B: {prompt_tokens: 32}}, trial_s: 2.0e+0, new_tokens: 0x4,
                   prompt_tokens: 64},
            short: {trial_s: 2, new_tokens: 4, prompt_tokens: 16, description: 'short prompts'}}
slots:
  - 'cpu:0-3'
  - "cpu:4-7"
precisions:
  - bf16
  - fp16
models: {B: {seed: 1, source: 'synthetic:llama-3.2-tiny'},
         A: {source: synthetic:llama-3.2-tiny, seed: 0}}
"""

LAYOUTS = ("alone_A", "alone_B", "colocated")
RUNS = [(s, p, lay) for s in ("short", "long") for p in ("bf16", "fp16") for lay in LAYOUTS]


def load_text(tmp_path, text: str, name: str = "c.yaml") -> dict:
    path = tmp_path / name
    path.write_text(text)
    return config.load(path)


def all_params(cfg: dict) -> dict:
    out = {run: config.run_params(cfg, *run) for run in RUNS}
    out["report"] = config.report_params(cfg)
    out["models"] = tuple(config.model_params(cfg, m) for m in ("A", "B"))
    return out


def edited(raw: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(raw)
    _set(path, value)(cfg)
    return config.validate(cfg)


@pytest.fixture
def raw() -> dict:
    """The block-style config as a raw (unvalidated) dict, for edits."""
    return yaml.safe_load(YAML_BLOCK)


def test_key_order_and_yaml_formatting_change_no_params(tmp_path):
    # Same values, different key order, quoting, flow/block style, comments and int spelling
    # (0x4). trial_s is written 2 in both here; 2 vs 2.0e+0 is tested below.
    block = load_text(tmp_path, YAML_BLOCK, "block.yaml")
    flow = load_text(tmp_path, YAML_FLOW.replace("2.0e+0", "2"), "flow.yaml")
    assert all_params(block) == all_params(flow)


def test_integral_float_and_int_give_the_same_params(tmp_path):
    block = load_text(tmp_path, YAML_BLOCK, "block.yaml")
    flow = load_text(tmp_path, YAML_FLOW, "flow.yaml")
    assert all_params(block) == all_params(flow)


def test_params_are_canonical_json(raw):
    cfg = config.validate(raw)
    params = config.run_params(cfg, "short", "bf16", "alone_A")
    assert params == (
        '{"device":"auto","duration_s":2,"layout":"alone_A","precision":"bf16",'
        '"scenario":"short","seed":0,"slots":{"A":{"batch_size":1,"device":"cpu:0-3",'
        '"min_requests":3,"model":"A","new_tokens":4,"prompt_tokens":16,"warmup_requests":1}},'
        '"telemetry":{"enabled":true,"idle_s":2,"interval_s":0.2},"timeout_s":1800}'
    )


def test_run_spec_alone_contains_only_its_slot(raw):
    cfg = config.validate(raw)
    assert config.run_spec(cfg, "long", "fp16", "alone_B") == {
        "scenario": "long",
        "precision": "fp16",
        "layout": "alone_B",
        "device": "auto",
        "duration_s": 2,
        "seed": 0,
        "timeout_s": 1800,
        "telemetry": {"enabled": True, "interval_s": 0.2, "idle_s": 2},
        "slots": {
            "B": {
                "prompt_tokens": 32,
                "new_tokens": 4,
                "batch_size": 1,
                "warmup_requests": 1,
                "min_requests": 3,
                "model": "B",
                "device": "cpu:4-7",
            }
        },
    }
    assert list(config.run_spec(cfg, "long", "fp16", "alone_A")["slots"]) == ["A"]
    assert list(config.run_spec(cfg, "long", "fp16", "colocated")["slots"]) == ["A", "B"]


def test_auto_slots_give_auto_devices(raw):
    del raw["slots"]
    cfg = config.validate(raw)
    slots = config.run_spec(cfg, "short", "bf16", "colocated")["slots"]
    assert (slots["A"]["device"], slots["B"]["device"]) == ("auto", "auto")


def test_prompt_change_reruns_only_that_scenario(raw):
    before = all_params(config.validate(raw))
    after = all_params(edited(raw, "scenarios.short.prompt_tokens", 17))
    for run in RUNS:
        if run[0] == "short":
            assert after[run] != before[run], run
            slots = json.loads(after[run])["slots"]
            assert {s["prompt_tokens"] for s in slots.values()} == {17}, run
        else:
            assert after[run] == before[run], run
    # The report states each scenario's settings: it is rendered again (from the same tables).
    assert json.loads(after["report"])["settings"]["short"]["prompt_tokens"] == 17
    assert after["models"] == before["models"]


@pytest.mark.parametrize(
    ("path", "value"), [("report.title", "Another title"), ("notes", "tried on Tuesday")]
)
def test_report_title_and_notes_change_no_run(raw, path, value):
    before = all_params(config.validate(raw))
    after = all_params(edited(raw, path, value))
    for run in RUNS:
        assert after[run] == before[run], run
    assert after["models"] == before["models"]


def test_report_params_follow_title_and_descriptions_not_notes(raw):
    before = config.report_params(config.validate(raw))
    spec = json.loads(before)
    assert {k: v for k, v in spec.items() if k != "settings"} == {
        "title": "T",
        "scenarios": {"short": "short prompts", "long": ""},
        "hardware_notes": [],
    }
    # Each scenario's settings, stated as facts; a slot's own settings where it overrides.
    assert sorted(spec["settings"]) == ["long", "short"]
    assert set(spec["settings"]["short"]) == {
        "prompt_tokens", "new_tokens", "batch_size", "arrival", "min_requests", "trial_s",
        "slots",
    }  # fmt: skip
    assert config.report_params(edited(raw, "report.title", "U")) != before
    assert config.report_params(edited(raw, "scenarios.long.description", "d")) != before
    assert config.report_params(edited(raw, "notes", "n")) == before


def test_description_changes_no_run(raw):
    before = all_params(config.validate(raw))
    after = all_params(edited(raw, "scenarios.short.description", "reworded"))
    for run in RUNS:
        assert after[run] == before[run], run


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("scenarios.short.batch_size", 1),
        ("scenarios.short.warmup_requests", 1),
        ("scenarios.short.min_requests", 3),
        ("scenarios.short.seed", 0),
        ("scenarios.short.slots", {}),
        ("run", {"timeout_s": 1800}),
        ("device", "auto"),
        ("allocator", ""),
        ("layouts", ["alone_A", "alone_B", "colocated"]),
        ("models.A.trust_remote_code", False),
    ],
)
def test_explicit_default_equals_omitted(raw, path, value):
    assert all_params(edited(raw, path, value)) == all_params(config.validate(raw))


def test_slot_override_applies_to_that_slot_only(raw):
    before = config.validate(raw)
    after = edited(raw, "scenarios.short.slots", {"B": {"prompt_tokens": 48}})
    short = [(p, lay) for p in ("bf16", "fp16") for lay in LAYOUTS]
    for p, lay in short:
        same = config.run_params(after, "short", p, lay) == config.run_params(
            before, "short", p, lay
        )
        assert same == (lay == "alone_A"), (p, lay)
    spec = config.run_spec(after, "short", "bf16", "colocated")
    assert spec["slots"]["A"]["prompt_tokens"] == 16
    assert spec["slots"]["B"]["prompt_tokens"] == 48
    assert config.run_params(after, "long", "bf16", "colocated") == config.run_params(
        before, "long", "bf16", "colocated"
    )


def test_model_params_change_only_with_that_model(raw):
    before = config.validate(raw)
    after = edited(raw, "models.B.seed", 7)
    assert config.model_params(after, "A") == config.model_params(before, "A")
    assert config.model_params(after, "B") != config.model_params(before, "B")
    # runs do not depend on model params directly (they depend on the model files)
    assert config.run_params(after, "short", "bf16", "colocated") == config.run_params(
        before, "short", "bf16", "colocated"
    )


def test_convert_params_name_only_the_precision(raw):
    cfg = config.validate(raw)
    assert json.loads(config.convert_params(cfg, "fp16")) == {"precision": "fp16"}


def test_int4_settings_reach_only_int4_conversions_and_runs(raw):
    raw["precisions"] = ["bf16", "int4"]
    before = config.validate(raw)
    assert json.loads(config.convert_params(before, "int4")) == {
        "precision": "int4",
        "int4": {"group_size": 128, "symmetric": False, "quantize_lm_head": False},
    }
    grouped = edited(raw, "int4", {"group_size": 64})
    assert config.convert_params(grouped, "int4") != config.convert_params(before, "int4")
    assert config.convert_params(grouped, "bf16") == config.convert_params(before, "bf16")
    # The scheme reaches runs through the converted files, not through their params.
    assert config.run_params(grouped, "short", "int4", "colocated") == config.run_params(
        before, "short", "int4", "colocated"
    )
    reference = edited(raw, "int4", {"kernel": "reference"})
    assert config.convert_params(reference, "int4") == config.convert_params(before, "int4")
    assert (
        json.loads(config.run_params(reference, "short", "int4", "alone_A"))["int4_kernel"]
        == "reference"
    )
    assert config.run_params(reference, "short", "bf16", "alone_A") == config.run_params(
        before, "short", "bf16", "alone_A"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"group_size": 100}, "int4.group_size: 100 is not one of [32, 64, 128, 256]"),
        ({"kernel": "fast"}, "int4.kernel: 'fast' is not one of ['native', 'reference']"),
        ({"bits": 3}, "unknown key int4.bits"),
    ],
)
def test_int4_errors_name_the_key(raw, value, message):
    raw["int4"] = value
    with pytest.raises(config.ConfigError) as info:
        config.validate(raw)
    assert message in str(info.value)


def _two_models(**overrides) -> dict:
    cfg = {
        "models": {s: {"source": "synthetic:llama-3.2-tiny"} for s in "AB"},
        "precisions": ["bf16"],
        "scenarios": {"short": {"prompt_tokens": 8}},
    }
    cfg.update(overrides)
    return config.validate(cfg)


def test_allocator_is_part_of_accelerator_runs_only():
    npu = _two_models(device="npu", allocator="expandable_segments:True")
    assert json.loads(config.run_params(npu, "short", "bf16", "colocated"))["allocator"] == (
        "expandable_segments:True"
    )
    cpu = _two_models(device="cpu", allocator="expandable_segments:True")
    assert "allocator" not in json.loads(config.run_params(cpu, "short", "bf16", "colocated"))
    cpu_slots = _two_models(slots=["cpu:0", "cpu:1"], allocator="max_split_size_mb:64")
    assert "allocator" not in json.loads(config.run_params(cpu_slots, "short", "bf16", "colocated"))


def test_model_params_hold_only_what_the_source_kind_uses():
    synthetic = _two_models()
    synthetic["models"]["A"]["trust_remote_code"] = True
    assert json.loads(config.model_params(synthetic, "A")) == {
        "source": "synthetic:llama-3.2-tiny",
        "seed": 0,
    }
    hf = _two_models()
    hf["models"]["A"] = {
        "source": "hf:meta-llama/Llama-3.2-1B",
        "seed": 5,
        "trust_remote_code": False,
    }
    assert json.loads(config.model_params(hf, "A")) == {
        "source": "hf:meta-llama/Llama-3.2-1B",
        "trust_remote_code": False,
    }


# --- validation against the machine (issue: bad input refused before any work) ---------------


def machine_error(mutate, machine=None) -> str:
    cfg = base()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        config.validate(cfg, machine or fake_machine())
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("scenarios.s.trial_s", float("nan"), "scenarios.s.trial_s: nan"),
        ("run", {"timeout_s": float("inf")}, "run.timeout_s: inf"),
        ("run", {"timeout_s": float("nan")}, "run.timeout_s: nan"),
        ("telemetry", {"interval_s": float("-inf")}, "telemetry.interval_s: -inf"),
    ],
)
def test_non_finite_numbers_are_refused(path, value, key):
    message = error_of(_set(path, value))
    assert message.startswith(key) and "not a finite number" in message


def test_a_missing_local_checkpoint_is_refused(tmp_path):
    message = error_of(_set("models.B.source", f"local:{tmp_path}/nothing"))
    assert message.startswith("models.B.source:") and "is not a directory" in message
    (tmp_path / "empty").mkdir()
    message = error_of(_set("models.B.source", f"local:{tmp_path}/empty"))
    assert "has no config.json" in message


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ("synthetic: llama-3.2-tiny", "write synthetic:llama-3.2-tiny"),
        ("hf:org/repo@", "empty revision"),
    ],
)
def test_malformed_sources_are_refused(source, fix):
    message = error_of(_set("models.A.source", source))
    assert message.startswith("models.A.source:") and fix in message


def test_cuda_slots_on_a_machine_without_nvidia_smi():
    message = machine_error(_set("slots", ["cuda:3", "cuda:3"]))
    assert "nvidia-smi is not installed" in message and "set device: cpu" in message


def test_cuda_slots_beyond_the_gpus_there_are():
    one_gpu = fake_machine(cuda=(Accelerator(0, "NVIDIA L4", (8, 9)),), cpu_only_torch=False)
    message = machine_error(_set("slots", ["cuda:0", "cuda:3"]), one_gpu)
    assert message.startswith("slots: cuda:3 does not exist") and "cuda:0 NVIDIA L4" in message
    cfg = base()
    cfg["slots"] = ["cuda:0", "cuda:0"]
    assert config.validate(cfg, one_gpu)["resolved"]["device"] == "cuda"


def test_cuda_with_a_cpu_only_torch_is_refused():
    gpu = fake_machine(cuda=(Accelerator(0, "NVIDIA L4", (8, 9)),), cpu_only_torch=True)
    message = machine_error(_set("device", "cuda"), gpu)
    assert "CPU-only build" in message


def test_npu_without_torch_npu_is_refused():
    message = machine_error(_set("device", "npu"))
    assert message.startswith("device: npu needs torch_npu") and "set device: cpu" in message
    message = machine_error(_set("slots", ["npu:0", "npu:1"]))
    assert "torch_npu" in message


def test_npu_slots_beyond_the_npu_smi_table():
    npus = fake_machine(npu=(Accelerator(0, "910B2C"), Accelerator(1, "910B2C")), torch_npu=True)
    message = machine_error(_set("slots", ["npu:0", "npu:2"]), npus)
    assert message.startswith("slots: npu:2 does not exist: npu-smi info lists 2")


def test_cpu_cores_outside_the_affinity_mask_are_refused():
    message = machine_error(_set("slots", ["cpu:0", "cpu:1-63"]))
    assert message.startswith("slots: cpu:1-63 names cores 2-63 outside") and "0-1" in message


def test_auto_device_follows_what_the_machine_has():
    cfg = base()
    assert config.validate(cfg, fake_machine())["resolved"]["device"] == "cpu"
    gpu = fake_machine(cuda=(Accelerator(0, "NVIDIA H100", (9, 0)),), cpu_only_torch=False)
    assert config.validate(cfg, gpu)["resolved"]["device"] == "cuda"
    # A GPU that the installed torch cannot use leaves auto on the CPU, as the runtime would.
    cpu_torch = fake_machine(cuda=gpu.cuda, cpu_only_torch=True)
    assert config.validate(cfg, cpu_torch)["resolved"]["device"] == "cpu"
    npu = fake_machine(npu=(Accelerator(0, "910B3"),), torch_npu=True, cuda=gpu.cuda)
    assert config.validate(cfg, npu)["resolved"]["device"] == "npu"


def test_auto_never_runs_npu_smi_without_torch_npu():
    class Machine:
        cpu = fake_machine().cpu
        cuda = None
        has_torch_npu = False
        cpu_only_torch = True

        @property
        def npu(self):
            raise AssertionError("npu-smi was asked")

    assert config.validate(base(), Machine())["resolved"]["device"] == "cpu"


@pytest.mark.parametrize(("native_bf16", "dtype"), [(True, "bf16"), (False, "fp32")])
def test_native16_resolves_into_the_run_spec(native_bf16, dtype):
    cfg = base()
    cfg["precisions"] = ["native16", "int4"]
    cfg = config.validate(cfg, fake_machine(native_bf16=native_bf16))
    assert cfg["precisions"] == [dtype, "int4"]
    spec = config.run_spec(cfg, "s", dtype, "colocated")
    assert spec["precision"] == dtype and spec["device"] == "cpu"
    notes = cfg["resolved"]["notes"]
    assert len(notes) == 1 and notes[0].startswith(f"native16 = {dtype} on this cpu")
    # int4 computes with bf16 activations: flagged where bf16 is emulated.
    assert bool(cfg["resolved"]["warnings"]) is not native_bf16
    assert all("int4" in w for w in cfg["resolved"]["warnings"])
    assert (
        json.loads(config.report_params(cfg))["hardware_notes"]
        == notes + cfg["resolved"]["warnings"]
    )


def test_native16_equal_to_a_listed_precision_runs_once():
    cfg = base()
    cfg["precisions"] = ["bf16", "native16"]
    cfg = config.validate(cfg, fake_machine(native_bf16=True))
    assert cfg["precisions"] == ["bf16"]
    assert "already listed" in cfg["resolved"]["notes"][-1]


def test_native16_needs_the_machine():
    message = error_of(_set("precisions", ["native16"]))
    assert message.startswith("precisions: native16") and "name the precision" in message


def test_emulated_bf16_is_allowed_with_a_warning():
    cfg = config.validate(base(), fake_machine(native_bf16=False))
    assert cfg["precisions"] == ["bf16"]
    (warning,) = cfg["resolved"]["warnings"]
    assert warning.startswith("bf16 is emulated on this CPU")


def test_duplicated_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(
        "precisions: [bf16]\nscenarios:\n  s:\n    prompt_tokens: 8\n    trial_s: 4\n"
        "    trial_s: 8\nmodels: {A: {source: x}, B: {source: y}}\n"
    )
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value) == (
        f"{path} line 6: key 'trial_s' is given twice (first on line 5); keep one"
    )


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {prompt_tokens: 8}\nother:\n  <<: *b\n  new_tokens: 4\n  <<: *b\n")
    assert config.read_yaml(path)["other"] == {"prompt_tokens": 8, "new_tokens": 4}


@pytest.mark.parametrize(
    ("path", "value", "start"),
    [
        ("repeats", 3, "repeats: repeat blocks were replaced by measuring sessions"),
        ("scenarios.s.duration_s", 8, "scenarios.s.duration_s: renamed trial_s"),
        ("scenarios.s.rounds", 0, "scenarios.s.rounds: 0 is less than the minimum of 1"),
        ("scenarios.s.rounds", "all", "scenarios.s.rounds: 'all' is not valid"),
        ("scenarios.s.max_s", 0, "scenarios.s.max_s: 0 is less than or equal"),
        ("analysis", {"confidence": 1}, "analysis.confidence: 1 is greater than or equal"),
        ("analysis", {"equivalence_margin": 0}, "analysis.equivalence_margin: 0 is less than"),
        ("analysis", {"drift": 0.1}, "unknown key analysis.drift"),
    ],
)
def test_rounds_and_analysis_settings_are_checked(path, value, start):
    assert error_of(_set(path, value)).startswith(start)


def test_a_session_spec_holds_every_trial_and_its_rounds():
    raw = base()
    raw["scenarios"]["s"]["rounds"] = 4
    cfg = config.validate(raw)
    spec = config.session_spec(cfg, "s", "bf16")
    assert list(spec["trials"]) == ["alone_A", "alone_B", "colocated"]
    for layout, run in spec["trials"].items():
        assert run == config.run_spec(cfg, "s", "bf16", layout)
    assert (spec["rounds"], spec["min_rounds"], spec["max_s"]) == (4, 5, 120)
    assert spec["target_half_width"] == 0.03 and spec["baseline"] is None


# --- run.exclusivity: read by the measuring jobs, outside every cache key ----------------------


def test_the_exclusivity_policy_has_defaults_and_reads_yaml_off_as_off():
    assert config.exclusivity_policy({}) == {"mode": "fail", "busy_cpu_fraction": 0.5}
    # YAML 1.1 reads a bare off as false: it means off, in the config and for the jobs.
    raw = {**base(), **yaml.safe_load("run:\n  exclusivity: off\n  busy_cpu_fraction: 0.8\n")}
    assert raw["run"]["exclusivity"] is False
    assert config.validate(raw)["run"]["exclusivity"] == "off"
    assert config.exclusivity_policy(raw) == {"mode": "off", "busy_cpu_fraction": 0.8}


@pytest.mark.parametrize(
    ("run", "line"),
    [
        ({"exclusivity": "strict"}, "run.exclusivity: 'strict' is not a policy; use fail, warn"),
        ({"exclusivity": True}, "run.exclusivity: True is not a policy; use fail, warn or off"),
        ({"busy_cpu_fraction": 0}, "run.busy_cpu_fraction: 0 is less than or equal to"),
        ({"busy_cpu_fraction": 1.5}, "run.busy_cpu_fraction: 1.5 is greater than the maximum"),
        ({"busy_cpu_fraction": float("nan")}, "run.busy_cpu_fraction: nan is not a finite"),
    ],
)
def test_exclusivity_mistakes_are_one_line_for_snakemake_and_for_the_jobs(run, line):
    raw = {**base(), "run": run}
    for read in (config.validate, config.exclusivity_policy):
        with pytest.raises(ConfigError) as info:
            read(raw)
        assert str(info.value).startswith(line) and "\n" not in str(info.value)


def test_the_exclusivity_policy_is_in_no_cache_key(raw):
    """It decides whether a busy job measures, not what a run measures: editing it reruns no
    block, sweep or calibration (the jobs read it from Snakemake's config, not their params)."""

    def keys(cfg: dict) -> dict:
        return {
            **all_params(cfg),
            "sessions": [config.session_params(cfg, s, "bf16") for s in ("short", "long")],
            "calibration": config.calibration_params(cfg, "A", "bfloat16"),
        }

    before = keys(config.validate(raw))
    assert keys(edited(raw, "run", {"exclusivity": "warn", "busy_cpu_fraction": 0.9})) == before
    assert keys(edited(raw, "run", {"exclusivity": False})) == before
