"""What the benchmark scripts share."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def build_mini_bf16(work: Path) -> str:
    """synthetic:llama-3.2-mini (the CPU default's shape) fetched and converted to bf16 under
    ``work``; returns the converted model's directory."""
    from dualbench.models.convert import convert
    from dualbench.models.sources import fetch

    fetch("synthetic:llama-3.2-mini", work / "base")
    convert(work / "base", "bf16", work / "bf16")
    return str(work / "bf16")


def default_config() -> dict:
    """config/config.yaml as a dict, to edit before ``run_pipeline``."""
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def run_pipeline(cfg: dict, prefix: str, target: str | list[str] = "report") -> tuple[Path, float]:
    """`snakemake --cores all <target...>` on ``cfg`` in a new temporary work directory (links to
    the repository's Snakefile and workflow/); returns the directory and the seconds it took.
    Exits with the tail of Snakemake's stderr when it fails."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("Snakefile", "workflow"):
        (work / name).symlink_to(REPO / name)
    (work / "config").mkdir()
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "all",
            *([target] if isinstance(target, str) else target),
        ],  # fmt: skip
        cwd=work,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
        raise SystemExit(f"snakemake failed; work dir {work}")
    return work, time.perf_counter() - started
