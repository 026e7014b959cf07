"""Every shipped preset is valid when layered over the default the way Snakemake layers
--configfile (maps merged key by key, everything else replaced)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dualbench import config

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "config" / "presets").glob("*.yaml"))


def overlay(base: dict, top: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_there_are_presets_for_npu_cuda_and_cpu():
    names = {p.stem for p in PRESETS}
    assert {"llama-3.2-1b-npu", "llama-3.2-3b-npu", "llama-3.2-1b-cuda"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_is_valid_over_the_default(preset):
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = config.validate(overlay(base, yaml.safe_load(preset.read_text())))
    kind = preset.stem.split("-")[-1] if "shared" not in preset.stem else "npu"
    if kind in ("npu", "cuda"):
        assert cfg["device"] == kind
        assert "fp16" in cfg["precisions"]
    # Every scenario measures several calls per slot, so latency percentiles mean something.
    for name in cfg["scenarios"]:
        for slot in config.model_names(cfg):
            s = config.slot_settings(cfg, name, slot)
            assert s["min_requests"] >= 2 * s["batch_size"], (name, slot)
