"""Model sources (synthetic build, local validation, hf/modelscope failure messages without the
network) and precision conversion, on the tiny synthetic preset."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from dualbench.model_shapes import SYNTHETIC_PRESETS
from dualbench.models import sources
from dualbench.models.convert import ConversionError, convert
from dualbench.models.sources import (
    SourceError,
    fetch,
    parse_source,
    read_source,
    synthetic_tokenizer,
)

TINY = "synthetic:llama-3.2-tiny"
# tiny: embedding 128256 * 256 = 32 833 536; per layer q 256*256 + k 256*64 + v 256*64
# + o 256*256 + mlp 3 * 256*1024 + 2 norms * 256 = 950 784, times 4 layers = 3 803 136;
# final norm 256; lm_head is tied (not counted again).
TINY_PARAMETERS = 32_833_536 + 3_803_136 + 256


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to resolve or connect."""

    def refuse(*args, **kwargs):
        raise AssertionError("test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- synthetic ----------------------------------------------------------------------------


def test_synthetic_tokenizer_round_trip():
    tok = synthetic_tokenizer()
    ids = tok("t5 t17 t127999", add_special_tokens=False)["input_ids"]
    assert ids == [5, 17, 127999]
    assert tok.decode(ids) == "t5 t17 t127999"
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (128000, 128001, 128001)
    assert len(tok) == 128256


def test_fetch_synthetic_writes_a_checkpoint(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "source.json"} <= names
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["vocab_size"] == 128256
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (8, 2)
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["head_dim"]) == (256, 4, 32)
    assert cfg["rope_parameters"]["rope_type"] == "llama3"
    assert cfg["rope_parameters"]["rope_theta"] == 500000.0
    assert cfg["tie_word_embeddings"] is True
    assert cfg["max_position_embeddings"] == 131072
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (128000, 128001)

    with safe_open(tiny_model / "model.safetensors", "pt") as f:
        keys = list(f.keys())
        dtypes = {str(f.get_slice(k).get_dtype()) for k in keys}
    # embedding + final norm + 4 layers * (q, k, v, o, gate, up, down, 2 norms); no lm_head
    assert len(keys) == 2 + 4 * 9
    assert "lm_head.weight" not in keys
    assert dtypes == {"BF16"}

    record = json.loads((tiny_model / "source.json").read_text())
    assert record["source"] == TINY
    assert record["kind"] == "synthetic"
    assert record["synthetic"] is True
    assert record["seed"] == 0
    assert record["weights_dir"] == "."
    assert record["preset"] == "llama-3.2-tiny"
    assert record["parameters"] == TINY_PARAMETERS
    assert read_source(tiny_model)["weights_dir"] == str(tiny_model.resolve())


def test_fetched_tokenizer_loads(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert tok("t1 t2", add_special_tokens=False)["input_ids"] == [1, 2]
    assert tok.eos_token_id == 128001


def test_synthetic_weights_follow_the_seed(tiny_model, tmp_path):
    ref = load_file(tiny_model / "model.safetensors")
    fetch(TINY, tmp_path / "same", seed=0)
    same = load_file(tmp_path / "same" / "model.safetensors")
    assert sorted(same) == sorted(ref)
    assert all(same[k].equal(ref[k]) for k in ref)
    fetch(TINY, tmp_path / "other", seed=1)
    other = load_file(tmp_path / "other" / "model.safetensors")
    assert json.loads((tmp_path / "other" / "source.json").read_text())["seed"] == 1
    emb = "model.embed_tokens.weight"
    assert not other[emb].equal(ref[emb])
    assert not other["model.layers.0.self_attn.q_proj.weight"].equal(
        ref["model.layers.0.self_attn.q_proj.weight"]
    )


@pytest.mark.parametrize(
    ("preset", "hidden", "layers", "heads", "kv_heads", "head_dim"),
    [("llama-3.2-1b", 2048, 16, 32, 8, 64), ("llama-3.2-3b", 3072, 28, 24, 8, 128)],
)
def test_public_presets_have_the_public_shapes(preset, hidden, layers, heads, kv_heads, head_dim):
    shape = SYNTHETIC_PRESETS[preset]
    assert shape["hidden_size"] == hidden
    assert shape["num_hidden_layers"] == layers
    assert shape["num_attention_heads"] == heads
    assert shape["num_key_value_heads"] == kv_heads
    assert shape["head_dim"] == head_dim
    assert shape["intermediate_size"] == 8192
    assert shape["vocab_size"] == 128256
    assert shape["max_position_embeddings"] == 131072
    assert shape["tie_word_embeddings"] is True
    assert shape["rope_parameters"] == {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    }


def test_unknown_synthetic_preset(tmp_path):
    with pytest.raises(SourceError) as info:
        fetch("synthetic:llama-9b", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "'llama-9b'" in message
    assert "llama-3.2-tiny" in message


@pytest.mark.parametrize(
    "bad", ["llama", "ftp:x", "hf:", "synthetic:", ":x", "hf:a/b/c", "modelscope:name"]
)
def test_parse_source_rejects(bad):
    with pytest.raises(SourceError) as info:
        parse_source(bad)
    assert "\n" not in str(info.value)
    assert "synthetic:<preset>" in str(info.value)


@pytest.mark.parametrize(
    ("bad", "fix"),
    [
        ("synthetic: llama-3.2-tiny", "write synthetic:llama-3.2-tiny"),
        ("local: /models/x ", "write local:/models/x"),
        ("hf:org/repo@", "write hf:org/repo@<revision> or drop the @"),
    ],
)
def test_parse_source_names_the_fix(bad, fix):
    with pytest.raises(SourceError, match=re.escape(fix)):
        parse_source(bad)


def test_parse_source():
    assert parse_source("hf:meta-llama/Llama-3.2-1B@main") == ("hf", "meta-llama/Llama-3.2-1B@main")
    assert parse_source("hf:gpt2") == ("hf", "gpt2")
    assert parse_source("modelscope:LLM-Research/Llama-3.2-1B") == (
        "modelscope",
        "LLM-Research/Llama-3.2-1B",
    )
    assert parse_source("local:/models/my model") == ("local", "/models/my model")


# --- local --------------------------------------------------------------------------------


def local_copy(tiny_model, dest):
    shutil.copytree(tiny_model, dest, ignore=shutil.ignore_patterns("source.json"))
    return dest


def local_error(path, tmp_path) -> str:
    with pytest.raises(SourceError) as info:
        fetch(f"local:{path}", tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    assert f"local:{path}" in message
    return message


def test_local_missing_dir(tmp_path):
    assert "is not a directory" in local_error(tmp_path / "nope", tmp_path)


def test_local_without_config(tiny_model, tmp_path):
    ckpt = local_copy(tiny_model, tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    assert "no config.json" in local_error(ckpt, tmp_path)


def test_local_with_bin_weights_only(tiny_model, tmp_path):
    ckpt = local_copy(tiny_model, tmp_path / "ckpt")
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    message = local_error(ckpt, tmp_path)
    assert "no *.safetensors" in message
    assert "convert the checkpoint to safetensors" in message


def test_local_without_tokenizer(tiny_model, tmp_path):
    ckpt = local_copy(tiny_model, tmp_path / "ckpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (ckpt / name).unlink()
    assert "no tokenizer files" in local_error(ckpt, tmp_path)


def test_local_valid_checkpoint(tiny_model, tmp_path):
    ckpt = local_copy(tiny_model, tmp_path / "ckpt")
    record = fetch(f"local:{ckpt}", tmp_path / "out")
    assert record["kind"] == "local"
    assert record["synthetic"] is False
    assert record["seed"] is None
    assert record["weights_dir"] == str(ckpt.resolve())
    assert record["architectures"] == ["LlamaForCausalLM"]
    assert record["max_position_embeddings"] == 131072
    assert json.loads((tmp_path / "out" / "source.json").read_text()) == record
    assert read_source(tmp_path / "out")["weights_dir"] == str(ckpt.resolve())


# --- remote, without the network --------------------------------------------------------------


def test_hf_offline_fails_in_one_line(monkeypatch, tmp_path, no_network):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads its environment once, at import: set the constants it uses too,
    # and point its cache at an empty directory so a cached snapshot cannot answer.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SourceError) as info:
        fetch("hf:meta-llama/Llama-3.2-1B", tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("hf:meta-llama/Llama-3.2-1B: download failed")
    assert "HF_TOKEN" in message
    assert "HF_ENDPOINT" in message
    assert not (tmp_path / "out" / "source.json").exists()


def test_modelscope_without_package(monkeypatch, tmp_path, no_network):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import modelscope -> ImportError
    with pytest.raises(SourceError) as info:
        fetch("modelscope:LLM-Research/Llama-3.2-1B", tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install modelscope" in message
    assert "local:<dir>" in message


# --- conversion ---------------------------------------------------------------------------


def test_convert_fp16(tiny_model, tmp_path):
    out = tmp_path / "fp16"
    record = convert(tiny_model, "fp16", out)
    files = sorted(out.glob("*.safetensors"))
    assert files
    for path in files:
        with safe_open(path, "pt") as f:
            names = f.keys()
            assert {str(f.get_slice(k).get_dtype()) for k in names} == {"F16"}
    on_disk = json.loads((out / "conversion.json").read_text())
    assert on_disk == record
    assert record["precision"] == "fp16"
    assert record["dtype"] == "float16"
    assert record["source"] == TINY
    assert record["synthetic"] is True
    assert record["trust_remote_code"] is False
    assert record["parameters"] == TINY_PARAMETERS
    assert record["weight_bytes"] == sum(p.stat().st_size for p in files)
    # 2 bytes per parameter plus the safetensors header
    assert 2 * TINY_PARAMETERS < record["weight_bytes"] < 2 * TINY_PARAMETERS + 64 * 1024
    assert record["nonfinite_parameters"] == 0
    # workers load with dtype="auto": the saved config must name the converted dtype
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"
    assert (out / "tokenizer.json").is_file()


def test_convert_refuses_an_unknown_precision(tiny_model, tmp_path):
    with pytest.raises(ConversionError, match="'int8' cannot be produced; use one of fp32, bf16"):
        convert(tiny_model, "int8", tmp_path / "int8")


def test_weight_patterns_never_fetch_pickles():
    assert not any(p.endswith((".bin", ".pt", ".pth", ".pkl")) for p in sources.WEIGHT_PATTERNS)
