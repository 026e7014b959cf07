"""The sampler, the sources' availability, and the reduction of a run's samples to the window
(dualbench.telemetry, dualbench.analysis.telemetry) on hand-made records."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dualbench.analysis.telemetry import active_fraction
from dualbench.analysis.telemetry import reduce_run_telemetry as summarize
from dualbench.measure.slot_model import sample_utilization
from dualbench.telemetry import sampler as tsampler
from dualbench.telemetry import sources as tsources
from tests.helpers import fake_nvml

S = 1_000_000_000


class FlakySource(tsources.Source):
    name = "flaky"

    def __init__(self):
        super().__init__("npu:0", ("A",))
        self.n = 0

    def read(self):
        self.n += 1
        if self.n % 2:
            raise RuntimeError("npu-smi timed out")
        return [("power_w", 10.0)]


def test_sampler_records_samples_and_gaps_without_stopping(tmp_path):
    sampler = tsampler.Sampler([FlakySource()], interval_s=0.02).start()
    time.sleep(0.3)
    sampler.stop()
    assert sampler.rows and all(r[3:] == ("power_w", 10.0, "flaky") for r in sampler.rows)
    gap = sampler.gaps["flaky npu:0"]
    assert gap["count"] >= 3 and gap["first_error"] == "RuntimeError: npu-smi timed out"
    # stamps are on the workers' clock and ordered
    stamps = [r[0] for r in sampler.rows]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.perf_counter_ns()) < 5 * S
    sampler.write(tmp_path / "t.csv", [(1, "A", "npu:0", "npu_util_pct", 5.0, "torch")])
    rows = tsampler.read_csv(tmp_path / "t.csv")
    assert rows[0] == {"t_ns": 1, "slots": "A", "device": "npu:0", "metric": "npu_util_pct",
                       "value": 5.0, "source": "torch"}  # fmt: skip


class SteadySource(tsources.Source):
    """A power reading that never fails; counts its reads and whether two ever overlapped."""

    name = "steady"

    def __init__(self, device: str):
        super().__init__(device, ("A",))
        self.reads, self.inside, self.overlapped = 0, 0, False

    def read(self):
        self.inside += 1
        self.overlapped |= self.inside > 1
        time.sleep(0.01)
        self.reads += 1
        self.inside -= 1
        return [("power_w", 10.0)]


def test_sample_now_gives_every_source_a_sample_after_the_call_began():
    """A session's sampler runs for the whole session at its interval; a trial ends with
    sample_now, so the trial's window has a sample after its end whatever the interval."""
    sources = [SteadySource("npu:0"), SteadySource("npu:1")]
    sampler = tsampler.Sampler(sources, interval_s=30.0).start()  # one periodic read, then none
    time.sleep(0.05)
    window_end = time.perf_counter_ns()
    sampler.sample_now()
    after = [r for r in sampler.rows if r[0] > window_end]
    assert sorted(r[2] for r in after) == ["npu:0", "npu:1"]
    for _ in range(20):  # each source read once at a time, however often it is asked
        sampler.sample_now()
    sampler.stop()
    assert not any(s.overlapped for s in sources)
    assert all(s.reads >= 22 for s in sources)


def test_no_rapl_is_a_reason_not_a_zero(monkeypatch, tmp_path):
    monkeypatch.setattr(tsources, "RAPL_GLOB", str(tmp_path / "intel-rapl:[0-9]*"))
    domains, why = tsources.rapl_domains()
    assert domains == [] and "no RAPL energy counter" in why
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("123\n")
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").write_text("262143328850\n")
    domains, why = tsources.rapl_domains()
    assert domains == [tmp_path / "intel-rapl:0"] and why == ""
    source = tsources.RaplSource(domains, ("A", "B"))
    assert source.read() == [("energy_uj:intel-rapl:0", 123.0)]
    assert source.describe()["wraps"] == {"energy_uj:intel-rapl:0": 262143328850.0}


def test_npu_without_npu_smi_says_so(monkeypatch):
    from dualbench.backends.base import Slot

    monkeypatch.setenv("PATH", "/nonexistent")
    sources, missing = tsources.sources_for("npu", {"A": Slot("A", "npu", 0)})
    assert sources == []
    assert "npu-smi is not on PATH" in missing["npu:0"] and "npu:0" in missing["energy"]


NPU_SMI_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"


@pytest.fixture
def fake_npu_smi(monkeypatch):
    """npusmi.run answering from views per (view, chip id or None); the calls it saw."""
    from dualbench.telemetry import npusmi

    views, calls = {}, []

    def run(*args):
        calls.append(args)
        chip = int(args[args.index("-c") + 1]) if "-c" in args else None
        return views[(args[2], chip)]

    monkeypatch.setattr(npusmi, "run", run)
    return views, calls


def whole_card_views() -> dict[tuple[str, None], str]:
    # The real Atlas 200I A2 power view, its MCU given a real-time reading of its own (as 310P
    # MCUs print), printed after the chip's: the reading the issue saw integrated as the chip's.
    atlas = (NPU_SMI_FIXTURES / "power-atlas200IA2.txt").read_text()
    atlas = atlas.replace(
        "\tPower Dissipation(W)", "\tNPU Real-time Power(W)         : 3.4\n\tPower Dissipation(W)"
    )
    usages = (NPU_SMI_FIXTURES / "usages-910B.txt").read_text()
    usages += "\nAicore Usage Rate(%)           : 99\nChip Name                      : mcu\n"
    return {("power", None): atlas, ("usages", None): usages}


def test_npu_smi_source_samples_its_chip_not_the_mcu(monkeypatch, fake_npu_smi):
    from dualbench.telemetry import npusmi

    views, calls = fake_npu_smi
    views.update(whole_card_views())
    # no `npu-smi info -m`: the logic id is the NPU ID, the chip unknown, and no -c is passed
    monkeypatch.setattr(npusmi, "chip_address", lambda logic_id: (logic_id, None))
    values = dict(tsources.NpuSmiSource(0, ("A",)).read())
    assert values["power_w"] == 9.1 and values["aicore_pct"] == 0.0
    assert calls and all("-c" not in call for call in calls)


def test_npu_smi_source_asks_its_chip_with_c(monkeypatch, fake_npu_smi):
    from dualbench.telemetry import npusmi

    views, calls = fake_npu_smi
    # what `-c 1` prints: that chip's fields, no Chip ID
    views[("power", 1)] = "\tNPU Real-time Power(W)         : 41.5\n"
    views[("usages", 1)] = "\tAicore Usage Rate(%)           : 12\n"
    monkeypatch.setattr(npusmi, "chip_address", lambda logic_id: (0, 1))
    assert dict(tsources.NpuSmiSource(1, ("B",)).read()) == {"aicore_pct": 12.0, "power_w": 41.5}
    assert all(call[-2:] == ("-c", "1") for call in calls)


def test_npu_smi_view_without_the_chip_is_a_gap_not_the_mcus_value(monkeypatch, fake_npu_smi):
    from dualbench.telemetry import npusmi

    views, _ = fake_npu_smi
    views.update(whole_card_views())
    # chip 0 not printed (it answered "not supported"): only the MCU's 3.4 W is left
    views[("power", None)] = (
        "\tNPU ID : 0\n\tChip Count : 1\n\n\tNPU Real-time Power(W) : 3.4\n\tChip Name : MCU\n"
    )
    monkeypatch.setattr(npusmi, "chip_address", lambda logic_id: (logic_id, None))
    sampler = tsampler.Sampler([tsources.NpuSmiSource(0, ("A",))], interval_s=0.02).start()
    time.sleep(0.15)
    sampler.stop()
    assert sampler.rows == []
    gap = sampler.gaps["npu-smi npu:0"]
    assert gap["count"] >= 2 and "no section for chip 0" in gap["first_error"]


def test_worker_utilization_sampling_skips_failed_reads():
    values = iter([50, RuntimeError("driver busy"), 70])

    def read():
        v = next(values)
        if isinstance(v, Exception):
            raise v
        return v

    out, stop = [], threading.Event()
    thread = threading.Thread(target=sample_utilization, args=(read, 0.01, stop, out))
    thread.start()
    time.sleep(0.1)
    stop.set()
    thread.join()
    assert [v for _, v in out] == [50.0, 70.0]


# --- the window --------------------------------------------------------------------------


def call(submit_s, last_s):
    return {"submit_ns": int(submit_s * S), "token_ns": [int(last_s * S)], "delivered": 1}


def record(devices: dict[str, str], cores=None, idle=(0, 2 * S)):
    return {
        "status": "ok",
        "telemetry": {"idle_start_ns": idle[0], "idle_end_ns": idle[1], "sources": []},
        "slots": {
            name: {
                "device": device,
                "slot": {"name": name, "cores": list(cores or [])},
                "result": {"calls": [call(10, 14), call(14.5, 20)]},
            }
            for name, device in devices.items()
        },
    }


def rows(device, slots, metric, trace, source="npu-smi"):
    return [
        {
            "t_ns": int(t * S),
            "slots": slots,
            "device": device,
            "metric": metric,
            "value": v,
            "source": source,
        }  # fmt: skip
        for t, v in trace
    ]


WINDOW = (10 * S, 20 * S)


def test_own_devices_get_their_energy_and_tokens_per_joule():
    rec = record({"A": "npu:0", "B": "npu:1"})
    samples = (
        rows("npu:0", "A", "power_w", [(0, 50), (2, 50), (9, 100), (21, 100)])
        + rows("npu:1", "B", "power_w", [(0, 40), (2, 40), (9, 80), (21, 80)])
        + rows("npu:0", "A", "aicore_pct", [(9, 60), (21, 80)])
    )
    slots, run = summarize(rec, samples, WINDOW, {"A": 500, "B": 400})
    a, b = slots["A"], slots["B"]
    assert a["energy_j"] == pytest.approx(1000.0) and b["energy_j"] == pytest.approx(800.0)
    assert a["power_idle_w"] == pytest.approx(50.0)
    assert a["energy_net_j"] == pytest.approx(1000 - 50 * 10)
    assert a["tokens_per_j"] == pytest.approx(0.5)
    assert a["energy_source"] == "sampled power, trapezoid"
    # AI Core 60 -> 80 % linearly over 9..21 s: mean over 10..20 s is 70 %
    assert a["util_pct"] == pytest.approx(70.0) and a["util_source"].startswith("npu-smi")
    assert b["util_pct"] is None
    # busy from 10 to 14 and 14.5 to 20 of the 10 s window
    assert a["active_pct"] == pytest.approx(95.0)
    assert run["devices"] == "npu:0 + npu:1"
    assert run["energy_j"] == pytest.approx(1800.0)
    assert run["tokens_per_j"] == pytest.approx(900 / 1800)
    assert run["energy_net_j"] == pytest.approx(1800 - 90 * 10)
    assert run["tokens_per_j_net"] == pytest.approx(900 / 900)
    assert run["power_mean_w"] == pytest.approx(180.0)


def test_a_shared_device_is_the_runs_not_a_slots():
    rec = record({"A": "npu:0", "B": "npu:0"})
    samples = rows("npu:0", "A+B", "power_w", [(0, 30), (21, 30)])
    slots, run = summarize(rec, samples, WINDOW, {"A": 100, "B": 200})
    assert slots["A"]["energy_j"] is None and "shared by A+B" in slots["A"]["energy_note"]
    assert run["energy_j"] == pytest.approx(300.0) and run["tokens_per_j"] == pytest.approx(1.0)


def test_rapl_counter_with_wrap_and_idle_baseline():
    rec = record({"A": "cpu:0-1", "B": "cpu:2-3"}, cores=[0, 1])
    wrap = 1_000_000_000.0
    rec["telemetry"]["sources"] = [{"wraps": {"energy_uj:intel-rapl:0": wrap}}]
    # 20 W idle (0-2 s), 60 W from 2 s; the counter wraps at 1000 J
    trace = [(0, 900e6), (2, 940e6), (10, 1420e6 - wrap), (20, 2020e6 - wrap)]
    samples = rows("cpu package", "A+B", "energy_uj:intel-rapl:0", trace, "RAPL energy_uj")
    slots, run = summarize(rec, samples, WINDOW, {"A": 300, "B": 300})
    assert run["energy_j"] == pytest.approx(600.0)
    assert run["energy_source"] == "energy counter delta"
    assert run["energy_net_j"] == pytest.approx(600 - 20 * 10)
    assert slots["A"]["energy_j"] is None  # one package for both slots


def test_cpu_utilisation_from_the_worker_cpu_clock():
    rec = record({"A": "cpu:0-1"}, cores=[0, 1])
    samples = rows("cpu:0-1", "A", "cpu_time_s", [(10, 1.0), (20, 19.0)], "worker process_time")
    # parent samples in 10 ms ticks are ignored where the worker's own clock exists
    samples += rows("cpu:0-1", "A", "cpu_time_s", [(9, 0.0), (21, 30.0)], "process CPU time")
    slots, run = summarize(rec, samples, WINDOW, {"A": 10})
    assert slots["A"]["util_pct"] == pytest.approx(90.0)
    assert run["energy_j"] is None and run["energy_note"]


def test_active_fraction_clips_to_the_window():
    calls = [call(8, 12), call(12, 25)]
    assert active_fraction(calls, 10 * S, 20 * S) == pytest.approx(1.0)
    assert active_fraction([call(10, 11)], 10 * S, 20 * S) == pytest.approx(0.1)
    assert active_fraction([], 10 * S, 10 * S) is None


def _fake_pynvml(energy_supported: bool):
    import types

    mod, calls = fake_nvml()
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87, memory=40)
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=7 * 2**30, total=80)
    mod.nvmlDeviceGetPowerUsage = lambda h: 312_500  # mW
    mod.NVML_TEMPERATURE_GPU = 0
    mod.nvmlDeviceGetTemperature = lambda h, sensor: {0: 61}[sensor]  # °C

    def energy(h):
        if not energy_supported:
            raise mod.NVMLError("Not Supported")
        return 1_234_567  # mJ since driver load

    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    return mod, calls


@pytest.mark.parametrize("energy_supported", [True, False])
def test_nvml_source_reads_utilisation_memory_power_and_energy(monkeypatch, energy_supported):
    import sys

    mod, calls = _fake_pynvml(energy_supported)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    source = tsources.NvmlSource(1, ("B",))
    assert ("handle", 1) in calls and source.device == "cuda:1"
    expected = [
        ("gpu_util_pct", 87.0),
        ("mem_used_bytes", float(7 * 2**30)),
        ("power_w", 312.5),
        ("temperature_c", 61.0),
    ]
    if energy_supported:
        expected.append(("energy_mj", 1_234_567.0))
    assert source.read() == expected
    assert source.read() == expected  # pre-Volta: asked once, then power only


def test_cuda_without_nvidia_ml_py_says_how_to_install(monkeypatch):
    import sys

    from dualbench.backends.base import Slot

    monkeypatch.setitem(sys.modules, "pynvml", None)
    sources, missing = tsources.sources_for("cuda", {"A": Slot("A", "cuda", 0)})
    assert sources == [] and "pip install 'dualbench[cuda]'" in missing["cuda:0"]


def test_the_idle_baseline_is_waited_for_only_where_energy_is_measured(tmp_path):
    """The idle draw serves the net energy alone: CPU time sources give none, so a run
    without a power or energy source starts its workers at once."""
    from dualbench.measure.trial_record import idle_baseline_s
    from dualbench.telemetry.sources import ProcessCpuSource, RaplSource

    settings = {"idle_s": 2}
    cpu = [ProcessCpuSource("cpu:0", "A"), ProcessCpuSource("cpu:1", "B")]
    assert idle_baseline_s(cpu, settings) == 0.0
    assert idle_baseline_s([], settings) == 0.0
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("262143328850\n")
    assert idle_baseline_s([*cpu, RaplSource([domain], ("A", "B"))], settings) == 2
