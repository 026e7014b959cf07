"""The calibration: its pure parts on hand-made inputs, then a real calibration of this CPU's
two slots with tiny sizes, a probe that fails, and probes that die with their parent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from dualbench.analysis.columns import CALIBRATION_COLUMNS
from dualbench.errors import DeviceError
from dualbench.measure.calibration import (
    CPU_MIN_COPY_BYTES,
    calibrate,
    calibrate_to_file,
    copy_rates,
    default_copy_bytes,
    in_common_window,
    llc_bytes,
    matmul_rates,
    parse_cache_size,
    spread,
)

MIB = 1 << 20
TINY = {
    "device": "cpu",
    "slots": {"A": "cpu:0", "B": "cpu:1"},
    "names": ["A", "B"],
    "slot": "A",
    "dtype": "float32",
    "copy_bytes": 4 * MIB,
    "matmul_n": 64,
    "repeats": 3,
    "allocator": "",
}
needs_two_cores = pytest.mark.skipif(
    not {0, 1} <= set(psutil.Process().cpu_affinity()), reason="needs cores 0 and 1"
)


# --- the common window ------------------------------------------------------------------------


def test_the_window_keeps_only_copies_inside_every_slots_span():
    copies = {
        "A": [(0, 10), (10, 20), (20, 30), (30, 40)],
        "B": [(5, 15), (15, 25), (25, 35)],
    }
    # Window [5, 35]: A's first copy starts before B copies, its last ends after B stopped.
    assert in_common_window(copies) == {
        "A": [(10, 20), (20, 30)],
        "B": [(5, 15), (15, 25), (25, 35)],
    }


def test_a_copy_straddling_either_edge_is_dropped_and_one_on_the_edge_kept():
    copies = {"A": [(0, 4), (4, 9), (9, 14)], "B": [(4, 6), (6, 12)]}
    # Window [4, 12]: (4, 9) starts on the edge; (9, 14) ends past it.
    assert in_common_window(copies) == {"A": [(4, 9)], "B": [(4, 6), (6, 12)]}


def test_no_window_without_overlap_or_without_copies():
    assert in_common_window({"A": [(0, 10)], "B": [(20, 30)]}) == {"A": [], "B": []}
    assert in_common_window({"A": [(0, 10)], "B": []}) == {"A": [], "B": []}


# --- rates and spread -------------------------------------------------------------------------


def test_spread_is_the_interquartile_range_over_the_median():
    assert spread([1, 2, 3, 4, 5]) == pytest.approx((4 - 2) / 3)
    assert spread([7.0] * 4) == 0.0
    assert spread([]) is None


def test_a_copy_counts_read_and_write_traffic_and_a_matmul_2n3():
    assert copy_rates(1000, [1_000_000]) == [2000 * 1e3]  # 2 kB in 1 ms = 2 MB/s
    assert matmul_rates(10, [1_000]) == [2000 * 1e6]  # 2000 FLOP in 1 us


# --- the last-level cache ---------------------------------------------------------------------


def write_cache(root: Path, cpu: int, index: int, level: int, kind: str, size: str, cpus: str):
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (d / name).write_text(f"{value}\n")
    (d / "shared_cpu_list").write_text(f"{cpus}\n")


def fake_sysfs(root: Path) -> Path:
    """Four CPUs; private L1d/L1i/L2; two L3 instances of different sizes, each shared by two
    CPUs, so each appears twice in the tree."""
    for cpu in range(4):
        write_cache(root, cpu, 0, 1, "Data", "32K", str(cpu))
        write_cache(root, cpu, 1, 1, "Instruction", "32K", str(cpu))
        write_cache(root, cpu, 2, 2, "Unified", "1024K", str(cpu))
        shared, size = ("0-1", "16384K") if cpu < 2 else ("2-3", "32M")
        write_cache(root, cpu, 3, 3, "Unified", size, shared)
    (root / "cpufreq").mkdir()  # not a cpuN directory: ignored
    return root


def test_llc_sums_distinct_instances_once_each(tmp_path):
    assert llc_bytes(fake_sysfs(tmp_path)) == 16 * MIB + 32 * MIB


def test_llc_is_the_highest_level_present(tmp_path):
    for cpu in range(2):  # no L3: the L2s are the last level, one per CPU
        write_cache(tmp_path, cpu, 0, 1, "Data", "48K", str(cpu))
        write_cache(tmp_path, cpu, 2, 2, "Unified", "2048K", str(cpu))
    assert llc_bytes(tmp_path) == 2 * 2 * MIB


def test_llc_unreadable_is_none_and_the_copy_takes_the_floor(tmp_path):
    assert llc_bytes(tmp_path) is None
    assert default_copy_bytes("cpu", None) == CPU_MIN_COPY_BYTES
    assert default_copy_bytes("cpu", 128 * MIB) == 512 * MIB
    assert default_copy_bytes("cuda", 128 * MIB) == 1 << 30


def test_cache_sizes_parse():
    assert parse_cache_size("32768K\n") == 32 * MIB
    assert parse_cache_size("1M") == MIB
    assert parse_cache_size("512") == 512


# --- a real calibration -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    if not {0, 1} <= set(psutil.Process().cpu_affinity()):
        pytest.skip("needs cores 0 and 1")
    work = tmp_path_factory.mktemp("calibration")
    out = work / "calibration.json"
    record = calibrate_to_file(TINY, out, work / "probes")
    return record, out, work / "probes"


def test_the_record_has_every_column_and_finite_positive_peaks(calibrated):
    record, _, _ = calibrated
    assert set(CALIBRATION_COLUMNS) <= set(record)
    for key in (
        "copy_alone_bytes_s",
        "copy_contended_bytes_s",
        "copy_contended_total_bytes_s",
        "matmul_flop_s",
    ):
        assert np.isfinite(record[key]) and record[key] > 0, key
    assert (record["slot"], record["device"], record["backend"]) == ("A", "cpu:0", "cpu")
    assert (record["copy_bytes"], record["matmul_n"], record["repeats"]) == (4 * MIB, 64, 3)
    assert record["contended_slots"] == "A,B"
    assert record["llc_bytes"] == llc_bytes()
    assert record["spec"] == TINY
    assert record["device_info"]["kind"] == "cpu"
    assert record["host_cpu"]["arch"]


def test_the_medians_are_those_of_the_recorded_samples(calibrated):
    record, _, _ = calibrated
    assert len(record["copy_alone_samples"]) == len(record["matmul_samples"]) == 3
    assert record["copy_alone_bytes_s"] == np.median(record["copy_alone_samples"])
    assert record["matmul_flop_s"] == np.median(record["matmul_samples"])
    assert record["copy_alone_spread"] == pytest.approx(spread(record["copy_alone_samples"]))
    per_slot = {s: np.median(v) for s, v in record["copy_contended_samples"].items()}
    assert set(per_slot) == {"A", "B"}
    assert record["copy_contended_bytes_s"] == per_slot["A"]
    assert record["copy_contended_total_bytes_s"] == pytest.approx(sum(per_slot.values()))
    # The probes copied until every slot had enough, and the window kept enough of them.
    assert all(len(v) >= 3 for v in record["copy_contended_samples"].values())
    assert record["note"] == ""


def test_the_file_is_valid_json_of_the_record_and_the_probes_left_logs(calibrated):
    record, out, probes = calibrated
    assert json.loads(out.read_text(), parse_constant=pytest.fail) == record
    logs = sorted(p.name for p in probes.glob("*.log"))
    assert logs == [
        "probe-A-float32-alone-A.log",
        "probe-A-float32-contended-A.log",
        "probe-A-float32-contended-B.log",
    ]


@needs_two_cores
def test_auto_slots_spread_over_the_cores_and_two_slots_on_one_core_get_two_probes(tmp_path):
    record = calibrate({**TINY, "slots": "auto", "slot": "B"}, tmp_path / "auto")
    assert (record["slot"], record["device"], record["contended_slots"]) == ("B", "cpu:1", "A,B")
    shared = calibrate({**TINY, "slots": {"A": "cpu:0", "B": "cpu:0"}}, tmp_path / "shared")
    assert shared["slots"]["B"]["cores"] == [0]
    # Time-sliced on one core, the probes still copied until each had `repeats` copies
    # inside the common window.
    assert all(len(v) >= 3 for v in shared["copy_contended_samples"].values())
    assert shared["copy_contended_total_bytes_s"] > 0
    assert shared["note"] == ""


# --- failures ---------------------------------------------------------------------------------


@needs_two_cores
def test_a_failing_probe_raises_one_line_naming_slot_and_log_and_writes_nothing(tmp_path):
    out = tmp_path / "calibration.json"
    with pytest.raises(DeviceError) as caught:
        calibrate_to_file({**TINY, "dtype": "float99"}, out, tmp_path / "probes")
    message = str(caught.value)
    assert "\n" not in message
    assert "slot A" in message and "alone probe" in message and "float99" in message
    log = Path(message.rsplit("log: ", 1)[1])
    assert log.exists() and "float99" in log.read_text()  # the traceback went to the log
    assert not out.exists()
    assert not any(tmp_path.glob(".*.tmp"))


def test_a_slot_outside_the_machine_raises_and_writes_nothing(tmp_path):
    out = tmp_path / "calibration.json"
    with pytest.raises(DeviceError, match="slot B"):
        calibrate_to_file({**TINY, "slots": {"A": "cpu:0", "B": "cpu:99"}}, out, tmp_path)
    assert not out.exists()


# A calibration under the workflow script's signal handling, with an alone step long enough to
# be caught in the middle.
PARENT = """
import sys
from pathlib import Path
from dualbench.measure.calibration import calibrate
from dualbench.measure.lifetime import exit_on_signals
spec = dict(device="cpu", slots={"A": "cpu:0"}, names=["A"], slot="A", dtype="float32",
            copy_bytes=64 << 20, matmul_n=64, repeats=1_000_000, allocator="")
with exit_on_signals():
    calibrate(spec, Path(sys.argv[1]))
"""


def default_stop_signals() -> None:
    """In the child before exec: a shell without job control starts background commands with
    SIGINT ignored, which exit_on_signals rightly keeps; this test needs it delivered."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


# SIGINT: the parent's cleanup kills the probes; SIGKILL: no cleanup runs, and the kernel ends
# them (PR_SET_PDEATHSIG).
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_no_probe_outlives_its_parent(tmp_path, sig):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], preexec_fn=default_stop_signals
    )
    try:
        deadline = time.monotonic() + 20
        probes = []
        while not probes and time.monotonic() < deadline:
            time.sleep(0.1)
            probes = psutil.Process(parent.pid).children()
        assert probes, "no probe started"
        time.sleep(0.5)  # past the probe's die_with_parent, into its copies
        parent.send_signal(sig)
        _, alive = psutil.wait_procs(probes, timeout=10)
        assert not alive
        assert parent.wait(timeout=10) == (128 + sig if sig == signal.SIGINT else -sig)
    finally:
        parent.kill()
        parent.wait()
