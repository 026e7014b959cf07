"""Wall time of the embedded default, `snakemake --cores all report` from nothing, in a fresh
work directory (target: <= 5 minutes on any 2-core x86-64), and the measuring sessions' share
of their time inside trial windows (target: >= 80%).

    python benchmarks/default_time.py                 # this CPU as it is
    python benchmarks/default_time.py --as-avx2       # this CPU restricted to AVX2 kernels

Prints the CPU it ran on (torch's capability and the flags that decide 16-bit speed), the
precision native16 resolved to, the total, and per session (scenario x precision) its seconds,
rounds, why it stopped, its widest verdict-bearing interval and its share inside windows.

``--as-avx2`` approximates a CPU without AVX-512 on one that has it: torch's kernels are
dispatched as on AVX2 (ATEN_CPU_CAPABILITY=avx2), oneDNN is capped at AVX2
(ONEDNN_MAX_CPU_ISA=AVX2), and the precision is fp32, which native16 picks on such a CPU. It
is an estimate: a real AVX2-only CPU may also be slower per clock (issue 8 measured a 1024-token
fp32 forward pass of the mini model at 7.7 s there, 3.7 s here under this emulation).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-avx2", action="store_true", help="restrict this CPU to AVX2")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dualbench-default-"))
    for name in ("Snakefile", "workflow"):
        (work / name).symlink_to(REPO / name)
    (work / "config").mkdir()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    env = dict(os.environ)
    if args.as_avx2:
        config["precisions"] = ["fp32", "int4"]
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "all", "report"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    total = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit(f"snakemake failed (code {proc.returncode}); work dir {work}")

    print(f"CPU: {cpu_line(work, env)}")
    for line in proc.stdout.splitlines():
        if line.startswith("dualbench: native16") or "emulated" in line:
            print(line)
    print(f"total: {total:.0f} s ({total / 60:.1f} min) for `snakemake --cores all report`")
    sessions = sorted((work / "results" / "sessions").glob("*/*/session.json"))
    inside = seconds = 0.0
    for path in sessions:
        summary = json.loads(path.read_text())
        widths = {k: w for k, w in summary["half_widths"].items() if w is not None}
        worst = max(widths, key=widths.get, default="-")
        print(
            f"  session {summary['scenario']}/{summary['precision']}: "
            f"{summary['seconds']:.0f} s, {summary['rounds']} rounds ({summary['stopped']}), "
            f"widest ±{100 * widths.get(worst, float('nan')):.1f}% ({worst}), "
            f"{100 * summary['inside_share']:.0f}% inside windows"
        )
        inside += summary["window_seconds"]
        seconds += summary["seconds"]
    print(
        f"all sessions: {seconds:.0f} s, {100 * inside / max(seconds, 1e-9):.0f}% of it inside "
        f"trial windows; everything else (fetch, convert, calibrate, aggregate, report, "
        f"Snakemake itself): {total - seconds:.0f} s"
    )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    else:
        print(f"work dir kept: {work}")


def cpu_line(work: Path, env: dict) -> str:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, torch; from dualbench.hardware import cpu_facts; "
            "print(json.dumps([torch.backends.cpu.get_cpu_capability(), "
            "cpu_facts().to_dict()]))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    capability, facts = json.loads(probe.stdout)
    model = re.sub(r"\s+", " ", facts["model"])
    return (
        f"{model}, {facts['usable_cores']} usable cores, torch capability {capability}, "
        f"flags {' '.join(facts['flags']) or '-'}"
    )


if __name__ == "__main__":
    main()
