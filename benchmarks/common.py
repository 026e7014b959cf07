"""What the benchmark scripts share."""

from __future__ import annotations

from pathlib import Path


def build_mini_bf16(work: Path) -> str:
    """synthetic:llama-3.2-mini (the CPU default's shape) fetched and converted to bf16 under
    ``work``; returns the converted model's directory."""
    from dualbench.models.convert import convert
    from dualbench.models.sources import fetch

    fetch("synthetic:llama-3.2-mini", work / "base")
    convert(work / "base", "bf16", work / "bf16")
    return str(work / "bf16")
