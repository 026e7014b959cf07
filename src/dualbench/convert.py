"""Precision conversion: a fetched checkpoint -> a checkpoint in the benchmarked precision.

Writes a complete Hugging Face checkpoint (safetensors, config, tokenizer) plus
``conversion.json`` (what was converted, weight bytes, non-finite values after the cast), so a
run loads exactly the bytes it benchmarks and never converts inside the measured process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dualbench.metrics import PRECISION_DTYPES as DTYPES
from dualbench.sources import read_source

CONVERSION_FILE = "conversion.json"


class ConversionError(RuntimeError):
    pass


def convert(base_dir: Path, precision: str, out_dir: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if precision not in DTYPES:
        raise ConversionError(f"precision {precision!r} cannot be produced; use bf16 or fp16")
    source = read_source(base_dir)
    dtype = getattr(torch, DTYPES[precision])
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        source["weights_dir"],
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=source.get("trust_remote_code", False),
    )
    # A bf16 checkpoint cast to fp16 can overflow (fp16 tops out at 65504): count it, because a
    # model full of inf/nan may take different kernel paths and its numbers would not hold.
    nonfinite = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(source["weights_dir"]).save_pretrained(out_dir)
    weight_bytes = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    record = {
        "precision": precision,
        "dtype": DTYPES[precision],
        "source": source["source"],
        "synthetic": source["synthetic"],
        "trust_remote_code": source.get("trust_remote_code", False),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weight_bytes": weight_bytes,
        "nonfinite_parameters": nonfinite,
        "convert_s": round(time.perf_counter() - started, 3),
    }
    (out_dir / CONVERSION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record
