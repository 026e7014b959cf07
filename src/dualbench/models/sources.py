"""Model sources: turn a config ``source`` string into a checkpoint directory on disk.

- ``synthetic:<preset>``: a Llama 3.2-architecture model with seeded random weights, built
  here and saved as safetensors with its config and a tokenizer. Speed does not depend on
  weight values when the output length is fixed, so this gives real speed figures for the
  shape without a gated download.
- ``local:<dir>``: an existing Hugging Face checkpoint directory, validated.
- ``hf:<repo>[@revision]``: huggingface_hub's snapshot_download (honours HF_ENDPOINT, HF_TOKEN,
  HF_HUB_OFFLINE).
- ``modelscope:<id>``: the modelscope package's snapshot_download, when installed.

Every fetch writes ``source.json`` into its output directory: what was fetched and where the
weights are (the output directory itself for synthetic models; the validated or downloaded
directory otherwise, so multi-GB checkpoints are not copied).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dualbench.config.model_sources import parse_source, validate_checkpoint
from dualbench.errors import SourceError
from dualbench.model_shapes import FIRST_SPECIAL_TOKEN_ID, SYNTHETIC_PRESETS

SOURCE_FILE = "source.json"
# Only these files are ever fetched: safetensors weights (never pickles), configs, tokenizers.
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"]


def fetch(source: str, out_dir: Path, seed: int = 0, trust_remote_code: bool = False) -> dict:
    """Materialise ``source`` under ``out_dir``; return the record also written to source.json."""
    kind, ref = parse_source(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if kind == "synthetic":
        extra = build_synthetic(ref, out_dir, seed)
        weights_dir = "."
    else:
        if kind == "local":
            path = Path(ref).expanduser().resolve()
        elif kind == "hf":
            path = _download_hf(ref, _patterns(trust_remote_code))
        else:
            path = _download_modelscope(ref, _patterns(trust_remote_code))
        extra = validate_checkpoint(path, source)
        weights_dir = str(path)
    record = {
        "source": source,
        "kind": kind,
        "weights_dir": weights_dir,
        "synthetic": kind == "synthetic",
        "seed": seed if kind == "synthetic" else None,
        "trust_remote_code": trust_remote_code,
        "fetch_s": round(time.perf_counter() - started, 3),
        **extra,
    }
    (out_dir / SOURCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def read_source(base_dir: Path) -> dict:
    """The source record of a fetched model, with ``weights_dir`` made absolute."""
    base_dir = Path(base_dir)
    record = json.loads((base_dir / SOURCE_FILE).read_text())
    weights = Path(record["weights_dir"])
    record["weights_dir"] = str(
        weights if weights.is_absolute() else (base_dir / weights).resolve()
    )
    return record


# --- synthetic ----------------------------------------------------------------------------


def synthetic_config(preset: str):
    from transformers import LlamaConfig

    try:
        shape = SYNTHETIC_PRESETS[preset]
    except KeyError:
        names = ", ".join(sorted(SYNTHETIC_PRESETS))
        raise SourceError(f"synthetic preset {preset!r} is unknown; use one of {names}") from None
    return LlamaConfig(**shape)


def build_synthetic(preset: str, out_dir: Path, seed: int) -> dict[str, Any]:
    """Build the preset with weights drawn from ``seed`` and save it in bf16, the dtype the
    public Llama 3.2 checkpoints ship in."""
    import torch
    from transformers import LlamaForCausalLM

    config = synthetic_config(preset)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    # Initialising directly in bf16 halves memory and time for the 1B/3B shapes.
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = config.eos_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    synthetic_tokenizer().save_pretrained(out_dir)
    return {"preset": preset, "parameters": sum(p.numel() for p in model.parameters())}


def synthetic_tokenizer():
    """A word-level tokenizer over Llama 3's 128256 ids: ordinary id i is the word ``t<i>``,
    ids from 128000 are Llama 3's special tokens. Prompts of synthetic models are seeded
    random ids below 128000, so every prompt the workload builds encodes and decodes exactly."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(FIRST_SPECIAL_TOKEN_ID)}
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    n_total = SYNTHETIC_PRESETS["llama-3.2-tiny"]["vocab_size"]
    specials += [
        f"<|reserved_special_token_{i}|>" for i in range(n_total - FIRST_SPECIAL_TOKEN_ID - 2)
    ]
    vocab.update({tok: FIRST_SPECIAL_TOKEN_ID + i for i, tok in enumerate(specials)})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|reserved_special_token_0|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
        unk_token="<|reserved_special_token_0|>",
    )


# --- real checkpoints ---------------------------------------------------------------------


def _patterns(trust_remote_code: bool) -> list[str]:
    # A checkpoint's own modelling code is fetched only when the user trusts it.
    return WEIGHT_PATTERNS + (["*.py"] if trust_remote_code else [])


def _download_hf(ref: str, patterns: list[str]) -> Path:
    repo, _, revision = ref.partition("@")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo, revision=revision or None, allow_patterns=patterns)
    except Exception as e:  # network, auth, offline mode, missing repo: all end the same way
        raise SourceError(
            f"hf:{ref}: download failed ({type(e).__name__}: {_first_line(e)}); check the repo "
            "id, HF_TOKEN for gated models, HF_ENDPOINT for a mirror, or use local:<dir>"
        ) from None
    return Path(path)


def _download_modelscope(ref: str, patterns: list[str]) -> Path:
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise SourceError(
            f"modelscope:{ref}: the modelscope package is not installed; "
            "pip install modelscope, or use local:<dir>"
        ) from None
    try:
        path = snapshot_download(ref, allow_patterns=patterns)
    except Exception as e:
        raise SourceError(
            f"modelscope:{ref}: download failed ({type(e).__name__}: {_first_line(e)}); "
            "check the model id and network, or use local:<dir>"
        ) from None
    return Path(path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no message"
