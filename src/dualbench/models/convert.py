"""Precision conversion: a fetched checkpoint -> a checkpoint in the benchmarked precision.

Writes a complete Hugging Face checkpoint (safetensors, config, tokenizer) plus
``conversion.json``, so a run loads exactly the bytes it benchmarks and never converts inside
the measured process:
- bf16 / fp16: a cast, with a count of values that stopped being finite;
- int4: the compressed-tensors pack-quantized artifact (dualbench.models.int4), its bytes, and its
  fidelity against the 16-bit source on a fixed seeded input set (dualbench.models.fidelity).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from dualbench.config.vocabulary import PRECISION_DTYPES as DTYPES
from dualbench.errors import ConversionError
from dualbench.models.sources import read_source

CONVERSION_FILE = "conversion.json"
# The decoder blocks' linear layers, in a 16-bit or an INT4 checkpoint: the weights INT4
# replaces, so "linear-weight bytes" compares like with like whatever happens to lm_head.
BLOCK_LINEAR = re.compile(
    r"\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\."
    r"(weight|weight_packed|weight_scale|weight_zero_point|weight_shape)$"
)
INT4_DEFAULTS = {"group_size": 128, "symmetric": False, "quantize_lm_head": False}


def convert(base_dir: Path, precision: str, out_dir: Path, int4: dict | None = None) -> dict:
    """Convert the fetched model in ``base_dir`` to ``precision`` in ``out_dir``.

    ``int4`` holds group_size, symmetric and quantize_lm_head (defaults: INT4_DEFAULTS)."""
    if precision not in DTYPES:
        raise ConversionError(
            f"precision {precision!r} cannot be produced; use one of {', '.join(DTYPES)}"
        )
    source = read_source(base_dir)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    if precision == "int4":
        record = _convert_int4(source, out_dir, {**INT4_DEFAULTS, **(int4 or {})})
    else:
        record = _convert_dense(source, precision, out_dir)
    record.update(
        {
            "precision": precision,
            "dtype": DTYPES[precision],
            "source": source["source"],
            "synthetic": source["synthetic"],
            "trust_remote_code": source.get("trust_remote_code", False),
            "weight_bytes": sum(f.stat().st_size for f in out_dir.glob("*.safetensors")),
            "linear_weight_bytes": linear_weight_bytes(out_dir),
            "convert_s": round(time.perf_counter() - started, 3),
        }
    )
    (out_dir / CONVERSION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _load(source: dict, dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        source["weights_dir"],
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=source.get("trust_remote_code", False),
    )


def _save_tokenizer(source: dict, out_dir: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(source["weights_dir"]).save_pretrained(out_dir)


def _convert_dense(source: dict, precision: str, out_dir: Path) -> dict:
    import torch

    model = _load(source, getattr(torch, DTYPES[precision]))
    # A bf16 checkpoint cast to fp16 can overflow (fp16 tops out at 65504): count it, because a
    # model full of inf/nan may take different kernel paths and its numbers would not hold.
    nonfinite = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
    model.save_pretrained(out_dir, safe_serialization=True)
    _save_tokenizer(source, out_dir)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "nonfinite_parameters": nonfinite,
    }


def _convert_int4(source: dict, out_dir: Path, settings: dict) -> dict:
    import torch

    from dualbench.models.fidelity import measure_fidelity
    from dualbench.models.int4.artifact import ACTIVATION_DTYPE, quantize_model

    model = _load(source, ACTIVATION_DTYPE)
    parameters = sum(p.numel() for p in model.parameters())
    compressor = quantize_model(model, **settings)
    nonfinite = sum(
        int((~torch.isfinite(t)).sum())
        for t in model.state_dict().values()
        if t.is_floating_point()
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    compressor.update_config(out_dir)
    _save_tokenizer(source, out_dir)
    del model
    return {
        "parameters": parameters,
        "nonfinite_parameters": nonfinite,
        "weights": "int4",
        "format": "compressed-tensors pack-quantized (W4A16)",
        **settings,
        "fidelity": measure_fidelity(source, out_dir),
    }


def linear_weight_bytes(model_dir: Path) -> int:
    """Bytes of the decoder blocks' linear weights as stored (INT4: packed values, scales,
    zero points and shapes), from the safetensors headers' byte offsets."""
    from dualbench.models.safetensors_file import SafetensorsFile

    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        for key, info in SafetensorsFile(path).entries.items():
            if BLOCK_LINEAR.search(key):
                begin, end = info["data_offsets"]
                total += end - begin
    return total
