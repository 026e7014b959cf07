"""Helpers that run the real Snakemake pipeline on a tiny synthetic model.

A work directory holds links to the repository's Snakefile and workflow/ and its own
config/config.yaml, so the pipeline runs exactly as a user runs it, on a config small enough
for CI."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = {
    "notes": "",
    "device": "cpu",
    "models": {
        "A": {"source": "synthetic:llama-3.2-tiny", "seed": 0},
        "B": {"source": "synthetic:llama-3.2-tiny", "seed": 1},
    },
    "precisions": ["bf16", "int4"],
    "scenarios": {
        "short": {
            "description": "short prompts",
            "prompt_tokens": 16,
            "new_tokens": 8,
            "trial_s": 1.0,
            "min_requests": 2,
            # One round: the rounds' own behaviour has its tests (repeats_config, units).
            "rounds": 1,
            # The smallest sweep: the victim alone, at half and at full neighbour capacity.
            "sweep": {"victim": "A", "fractions": [0, 0.5, 1.0]},
        },
        "mixed": {
            "description": "A short, B long",
            "prompt_tokens": 16,
            "new_tokens": 8,
            "trial_s": 1.0,
            "min_requests": 2,
            "rounds": 1,
            "slots": {"B": {"prompt_tokens": 96, "batch_size": 2}},
        },
    },
    # Small buffers: the figures are not the point in tests, the stage and its cache are.
    "calibration": {"repeats": 3, "copy_mib": 8, "matmul_n": 128},
    # warn, not the default fail: CI machines are shared, and a test must not fail because
    # something else uses a core beside it (the policies have their own tests).
    "run": {"timeout_s": 300, "exclusivity": "warn"},
    "report": {"title": "tiny pipeline"},
}


def fake_machine(
    native_bf16: bool = True,
    cores: tuple[int, ...] = (0, 1),
    cuda=None,
    npu=None,
    torch_npu: bool = False,
    cpu_only_torch: bool = True,
):
    """A stand-in for dualbench.hardware.Machine with chosen facts: an x86 CPU with or
    without AVX512-BF16, and the accelerators nvidia-smi / npu-smi would list (None: the tool
    is not installed)."""
    from types import SimpleNamespace

    from dualbench.hardware import CpuFacts

    flags = ("avx2", "fma", "avx512f", "avx512_bf16") if native_bf16 else ("avx2", "fma")
    return SimpleNamespace(
        cpu=CpuFacts("x86_64", "test CPU", flags, tuple(cores)),
        cuda=cuda,
        npu=npu,
        has_torch_npu=torch_npu,
        cpu_only_torch=cpu_only_torch,
    )


def tiny_config() -> dict:
    return copy.deepcopy(TINY_CONFIG)


REPEATS = 3


def repeats_config() -> dict:
    """The tiny config cut to its short scenario, in REPEATS rounds."""
    cfg = tiny_config()
    del cfg["scenarios"]["mixed"]
    # The sweep's intervals over blocks are tested on hand-made tables: 18 more runs here
    # would cost CI minutes for no behaviour the unit tests miss.
    del cfg["scenarios"]["short"]["sweep"]
    cfg["scenarios"]["short"]["rounds"] = REPEATS
    return cfg


def make_workdir(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow"):
        link = path / name
        if not link.exists():
            link.symlink_to(REPO / name)
    write_config(path, config)
    return path


def reuse_results(built: Path, workdir: Path, *parts: str) -> None:
    """Copy ``parts`` of ``built``'s results (e.g. "models", "calibration") into
    ``workdir``, where a test's own config would build the same ones: what is under test
    there is not the model build or the calibration, and each costs the suite CI time. Without
    Snakemake's metadata the copies count as up to date; a test that edits what they depend on
    must build its own."""
    for part in parts:
        shutil.copytree(built / "results" / part, workdir / "results" / part)


def write_config(workdir: Path, config: dict | str) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (workdir / "config" / "config.yaml").write_text(text)


def snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True):
    """Run Snakemake in ``workdir``; returns the CompletedProcess (stdout+stderr merged)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-6000:]}")
    return proc


def planned_jobs(workdir: Path, target: str = "report") -> set[tuple[str, str]]:
    """(rule, first output) of every job a dry run would execute."""
    out = snakemake(workdir, "-n", target).stdout
    jobs, rule = set(), None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^output: (.+)$", line.strip())
        if m and rule:
            jobs.add((rule, m.group(1).split(",")[0].strip()))
            rule = None
        elif line.strip().startswith("jobid:") and rule:
            # A job without output (rule all) has no output line.
            jobs.add((rule, ""))
            rule = None
    return jobs


def fake_nvml() -> tuple[types.ModuleType, list]:
    """The part of a pynvml stand-in every NVML test needs: NVMLError, init and shutdown, and
    handles "h<index>", each call recorded in the returned list ("init", ("handle", i),
    "shutdown"). A test adds the queries its code makes (utilisation, processes, …)."""

    class NVMLError(Exception):
        pass

    calls: list = []
    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError
    mod.nvmlInit = lambda: calls.append("init")
    mod.nvmlShutdown = lambda: calls.append("shutdown")
    mod.nvmlDeviceGetHandleByIndex = lambda i: calls.append(("handle", i)) or f"h{i}"
    return mod, calls


class RecordingSession:
    """A stand-in for the warm processes of dualbench.measure.session: each trial is noted
    with the exclusivity finding it was handed, and measures nothing."""

    def __init__(self, started: list):
        self.started = started

    def __call__(self, plan, models, work_dir, sources=None):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def trial(self, spec, work_dir, telemetry_csv, exclusivity=None):
        self.started.append((spec.get("sweep", {}).get("fraction", spec["layout"]),
                             exclusivity["verdict"], exclusivity["policy"]))  # fmt: skip
        return {"spec": spec, "status": "ok", "error": "", "slots": {}}

    def describe(self):
        return {}
