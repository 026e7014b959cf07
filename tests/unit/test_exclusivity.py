"""Measurement exclusivity (dualbench.measure.exclusivity): what a measuring job finds on its
slots before it starts, and what it does about it under run.exclusivity.

The readers are faked where the machine cannot be made to show a case (an NPU, a GPU, an idle
core on a busy CI box); the one thing this machine can show for real, a core kept busy by
another process, is shown for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from dualbench import config
from dualbench.backends.base import Slot
from dualbench.errors import DeviceError, user_errors_exit
from dualbench.measure import exclusivity
from dualbench.measure import rounds as rounds_module
from dualbench.measure.calibration import calibrate_to_file
from dualbench.measure.rounds import run_session
from dualbench.telemetry import npusmi, occupancy
from dualbench.telemetry.npusmi import NpuProcess, NpuSmiError
from tests.helpers import RecordingSession, fake_nvml, tiny_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"
FAIL = {"mode": "fail", "busy_cpu_fraction": 0.5}
WARN = {"mode": "warn", "busy_cpu_fraction": 0.5}
OFF = {"mode": "off", "busy_cpu_fraction": 0.5}
MODELS = {"A": "no model", "B": "no model"}  # a refused job loads none
# What npu-smi prints for an NPU without processes: the wording of its own row.
IDLE_ROW = "| No running processes found in NPU {} |"


def info_910b2c() -> str:
    return (FIXTURES / "info-910B2C.txt").read_text()


def not_called(*args):
    raise AssertionError("this reader must not be called")


def idle_cores(*cores: int):
    """core_times that say ``cores`` are idle: 1% busy between any two readings."""
    readings = iter(range(1, 1000))

    def read():
        n = next(readings)
        return {c: (n, 100 * n) for c in cores}

    return read


# --- npu-smi's process table ------------------------------------------------------------------


def test_the_process_table_of_a_real_npu_smi_info():
    processes, idle = npusmi.parse_processes(info_910b2c())
    # NPU 1 has no row at all in that capture: no row means no process.
    assert processes == [NpuProcess(0, 0, 124528, "python3.8", 17400.0)]
    assert idle == set()


def test_no_running_processes_rows_name_the_idle_npus():
    # The real capture with its one process row replaced by npu-smi's "none" rows.
    lines = info_910b2c().splitlines()
    row = next(i for i, line in enumerate(lines) if "124528" in line)
    border = lines[row - 1]
    lines[row : row + 1] = [IDLE_ROW.format(0), border, IDLE_ROW.format(1)]
    processes, idle = npusmi.parse_processes("\n".join(lines))
    assert processes == [] and idle == {0, 1}


def test_a_chip_with_two_processes_and_a_blank_name():
    # 910C-style rows: two chips under one NPU ID, a process npu-smi cannot name.
    text = info_910b2c().replace(
        "| 0       0                 | 124528        | python3.8                | 17400   ",
        "| 0       0                 | 124528        | python3.8                | 17400   "
        "                |\n"
        "| 0       1                 | 3333165       |                          | 50119   ",
    )
    processes, _ = npusmi.parse_processes(text)
    assert [(p.npu_id, p.chip_id, p.pid, p.name) for p in processes] == [
        (0, 0, 124528, "python3.8"),
        (0, 1, 3333165, ""),
    ]


def test_output_without_a_process_table_is_an_error_not_an_idle_npu():
    with pytest.raises(NpuSmiError, match="no process table"):
        npusmi.parse_processes((FIXTURES / "usages-910B.txt").read_text())


def npu_probes(text: str, own=frozenset({1})) -> exclusivity.Probes:
    return exclusivity.Probes(
        npu_smi_info=lambda: text,
        npu_address=lambda logic_id: (logic_id, 0),
        own_pids=lambda: set(own),
        core_times=not_called,  # NPU slots pin no host cores
    )


def test_a_foreign_process_on_a_slots_npu_makes_it_busy():
    slots = {"A": Slot("A", "npu", 0), "B": Slot("B", "npu", 1)}
    finding = exclusivity.check("npu", slots, FAIL, probes=npu_probes(info_910b2c()))
    assert finding["verdict"] == "busy"
    entry = {"device": "npu:0", "pid": 124528, "process": "python3.8", "memory_mb": 17400.0}
    assert finding["busy"] == [{"slot": "A", **entry}]
    assert [(c["device"], c["verdict"]) for c in finding["checked"]] == [
        ("npu:0", "busy"),
        ("npu:1", "clear"),
    ]
    assert finding["message"] == (
        "slot A (npu:0) is busy: pid 124528 (python3.8) on it; "
        "free the device or set run.exclusivity: warn"
    )
    assert exclusivity.refusal(finding) == finding["message"]


def test_our_own_process_on_the_npu_is_not_foreign():
    slots = {"A": Slot("A", "npu", 0)}
    probes = npu_probes(info_910b2c(), own={os.getpid(), 124528})
    assert exclusivity.check("npu", slots, FAIL, probes=probes)["verdict"] == "clear"


def test_without_npu_smi_the_verdict_is_unknown_never_a_failure(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    finding = exclusivity.check("npu", {"A": Slot("A", "npu", 0)}, FAIL)
    assert finding["verdict"] == "unknown"
    assert "npu-smi is not on PATH" in finding["checked"][0]["reason"]
    assert exclusivity.refusal(finding) is None


# --- NVML -------------------------------------------------------------------------------------


def fake_pynvml(processes: dict[int, list], names: dict[int, object]):
    """A pynvml stand-in: ``processes`` per device index (compute ones), ``names`` by pid."""
    mod, calls = fake_nvml()
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: processes[int(h[1:])]
    # The same process may be listed as a graphics one too: counted once.
    mod.nvmlDeviceGetGraphicsRunningProcesses = lambda h: processes[int(h[1:])][:1]

    def name(pid):
        if pid not in names:
            raise mod.NVMLError("Not Found")
        return names[pid]

    mod.nvmlSystemGetProcessName = name
    return mod, calls


def gpu_process(pid: int, mib: int | None):
    return types.SimpleNamespace(pid=pid, usedGpuMemory=None if mib is None else mib * 2**20)


def test_a_foreign_gpu_process_makes_the_slots_sharing_that_gpu_busy(monkeypatch):
    me = os.getpid()
    mod, calls = fake_pynvml(
        {0: [gpu_process(me, 500), gpu_process(4242, 1024)], 1: []},
        {me: "pytest", 4242: b"python3"},
    )
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    slots = {"A": Slot("A", "cuda", 0), "B": Slot("B", "cuda", 0), "C": Slot("C", "cuda", 1)}
    finding = exclusivity.check("cuda", slots, FAIL)
    entry = {"device": "cuda:0", "pid": 4242, "memory_mb": 1024.0, "process": "python3"}
    assert finding["busy"] == [{"slot": "A", **entry}, {"slot": "B", **entry}]
    assert finding["message"].startswith("slots A, B (cuda:0) are busy: pid 4242 (python3)")
    assert [c["verdict"] for c in finding["checked"]] == ["busy", "clear"]
    assert calls == ["init", ("handle", 0), ("handle", 1), "shutdown"]


def test_only_our_own_processes_on_the_gpu_is_clear(monkeypatch):
    me = os.getpid()
    mod, _ = fake_pynvml({0: [gpu_process(me, None)]}, {})
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    finding = exclusivity.check("cuda", {"A": Slot("A", "cuda", 0)}, FAIL)
    assert finding["verdict"] == "clear" and finding["busy"] == []


def test_without_nvidia_ml_py_the_verdict_is_unknown(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    finding = exclusivity.check("cuda", {"A": Slot("A", "cuda", 0)}, FAIL)
    assert finding["verdict"] == "unknown" and exclusivity.refusal(finding) is None
    assert "pip install 'dualbench[cuda]'" in finding["checked"][0]["reason"]


# --- CPU cores ------------------------------------------------------------------------------


def test_core_times_keep_the_core_ids_of_a_machine_with_an_offline_core(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  30 0 10 900 5 1 1 3 0 0\n"
        "cpu0 10 0 5 400 2 1 0 1 7 0\n"  # guest (7) is inside user already: not added
        "cpu2 20 2 5 500 3 0 1 2 0 0\n"  # cpu1 offline
        "intr 12345\n"
    )
    assert occupancy.read_core_times(stat) == {0: (16, 419), 2: (28, 533)}


def test_a_core_at_or_above_the_threshold_in_every_window_is_busy():
    # core 0: 10% busy, core 1: exactly the threshold, core 2: 90%; core 3 hot at first only
    # (a burst). Cool cores are not read again.
    readings = iter([
        {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 0)},
        {0: (10, 100), 1: (50, 100), 2: (90, 100), 3: (99, 100)},
        {1: (50, 100), 2: (90, 100), 3: (99, 100)},
        {1: (100, 200), 2: (170, 200), 3: (100, 200)},
        {1: (100, 200), 2: (170, 200)},
        {1: (150, 300), 2: (265, 300)},
    ])  # fmt: skip
    waited = []
    probes = exclusivity.Probes(core_times=lambda: next(readings), sleep=waited.append)
    slots = {"A": Slot("A", "cpu", None, (0, 1)), "B": Slot("B", "cpu", None, (2, 3))}
    finding = exclusivity.check("cpu", slots, FAIL, window_s=0.5, probes=probes)
    gap = exclusivity.CONFIRM_GAP_S
    assert waited == [0.5, gap, 0.5, gap, 0.5] and finding["window_s"] == 0.5
    assert [(b["slot"], b["core"]) for b in finding["busy"]] == [("A", 1), ("B", 2)]
    # Each core's figure is its least busy window.
    assert [c["cores"] for c in finding["checked"]][1] == [
        {"core": 2, "busy_fraction": 0.8},
        {"core": 3, "busy_fraction": 0.01},
    ]
    assert finding["message"] == (
        "slot A (cpu cores 0-1) is busy: core 1 at 50% in each of 3 windows of 0.5 s; "
        "slot B (cpu cores 2-3) is busy: core 2 at 80% in each of 3 windows of 0.5 s; "
        "free the cores or set run.exclusivity: warn"
    )


def test_idle_cores_are_clear():
    probes = exclusivity.Probes(core_times=idle_cores(0, 1), sleep=lambda s: None)
    slots = {"A": Slot("A", "cpu", None, (0,)), "B": Slot("B", "cpu", None, (1,))}
    finding = exclusivity.check("cpu", slots, FAIL, probes=probes)
    assert finding["verdict"] == "clear" and exclusivity.refusal(finding) is None
    assert [c["cores"] for c in finding["checked"]] == [
        [{"core": 0, "busy_fraction": 0.01}],
        [{"core": 1, "busy_fraction": 0.01}],
    ]


def test_a_core_kept_busy_by_another_process_is_found_busy():
    core = max(os.sched_getaffinity(0))
    spin = f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)  # past the interpreter's start-up: spinning, pinned
        slots = {"A": Slot("A", "cpu", None, (core,))}
        started = time.monotonic()
        finding = exclusivity.check("cpu", slots, FAIL)
        elapsed = time.monotonic() - started
    finally:
        spinner.kill()
        spinner.wait()
    assert finding["verdict"] == "busy", finding
    (busy,) = finding["busy"]
    assert busy["core"] == core and busy["busy_fraction"] >= 0.9
    # A hot core costs every confirming window and the pauses between them.
    confirm = exclusivity.CONFIRM_WINDOWS * exclusivity.WINDOW_S
    confirm += (exclusivity.CONFIRM_WINDOWS - 1) * exclusivity.CONFIRM_GAP_S
    assert 0.9 * confirm <= elapsed < confirm + 3


# --- the policy -------------------------------------------------------------------------------


def busy_core_times():
    """core_times in which every core is 80% busy between two readings."""
    readings = iter(range(1, 1000))

    def read():
        n = next(readings)
        return {c: (80 * n, 100 * n) for c in range(os.cpu_count() or 1)}

    return read


@pytest.fixture
def busy_machine(monkeypatch):
    monkeypatch.setattr(occupancy, "read_core_times", busy_core_times())
    # The readings are made up: waiting out real windows would only cost the suite time.
    monkeypatch.setattr(exclusivity, "WINDOW_S", 0.01)
    monkeypatch.setattr(exclusivity, "CONFIRM_GAP_S", 0.0)


@pytest.fixture
def cfg():
    return config.validate(tiny_config())


def test_off_checks_nothing(monkeypatch):
    monkeypatch.setattr(occupancy, "read_core_times", not_called)
    finding = exclusivity.check("cpu", {"A": Slot("A", "cpu", None, (0,))}, OFF)
    assert finding["verdict"] == finding["policy"] == "off" and finding["checked"] == []


def one_round(cfg, scenario="short"):
    return {**config.session_spec(cfg, scenario, "bf16"), "rounds": 1}


def test_warn_logs_one_line_and_the_trials_proceed(
    monkeypatch, tmp_path, cfg, busy_machine, capsys
):
    session = one_round(cfg)
    started = []
    monkeypatch.setattr(rounds_module, "Session", RecordingSession(started))
    run_session(session, MODELS, tmp_path / "out", tmp_path / "w", WARN,
                capacity=lambda record, slot: (1.0, ""))  # fmt: skip
    # every layout and every sweep point of the round, each with the one finding
    assert sorted(map(str, (s for s, _, _ in started))) == sorted(
        map(str, ["alone_A", "alone_B", "colocated", 0.0, 0.5, 1.0])
    )
    assert {(v, p) for _, v, p in started} == {("busy", "warn")}
    (line,) = capsys.readouterr().err.splitlines()[:1]
    assert line.startswith("dualbench: warning: slot A (cpu cores ")
    assert line.endswith("measuring anyway (run.exclusivity: warn)")


def test_fail_ends_a_busy_session_with_one_line_and_writes_nothing(
    tmp_path, cfg, busy_machine, monkeypatch
):
    """Under fail a busy session measures nothing and leaves no output, so that Snakemake
    counts the job as failed and tries it again next time: a busy slot is a passing state of
    the machine, not a result to cache."""
    monkeypatch.setattr(rounds_module, "Session", not_called)
    with pytest.raises(DeviceError) as refused:
        run_session(one_round(cfg), MODELS, tmp_path / "out", tmp_path / "workers", FAIL)
    line = str(refused.value)
    assert line.startswith("slot A (cpu cores ") and " is busy: core " in line
    assert line.endswith("free the cores or set run.exclusivity: warn")
    assert "\n" not in line
    assert not (tmp_path / "out").exists()


def test_a_busy_job_exits_with_its_line_and_no_traceback(tmp_path, cfg, busy_machine, capsys):
    with pytest.raises(SystemExit) as stopped, user_errors_exit():
        run_session(one_round(cfg), MODELS, tmp_path / "out", tmp_path / "workers", FAIL)
    assert stopped.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is busy: core" in err and "Traceback" not in err


def test_a_busy_calibration_starts_no_probe_and_writes_nothing(tmp_path, cfg, busy_machine):
    spec = config.calibration_spec(cfg, "A", "bfloat16")
    with pytest.raises(DeviceError, match=r"^slot A \(cpu cores "):
        calibrate_to_file(spec, tmp_path / "A.json", tmp_path / "probes", FAIL)
    assert not (tmp_path / "A.json").exists()
    assert not (tmp_path / "probes").exists()  # no probe started
