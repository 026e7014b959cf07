"""Aggregation from hand-built run records (the structure runner.run() writes) with exactly known
throughputs, so every number in runs, requests and scaling tables is checked against a value
worked out by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dualbench.analysis import columns
from dualbench.analysis import runs as single_pass
from dualbench.analysis.aggregate import aggregate
from dualbench.analysis.columns import RUN_COLUMNS
from dualbench.analysis.int4 import int4_baseline, int4_table
from dualbench.analysis.runs import energy_row, record_rows, run_tables
from dualbench.analysis.scaling import interference_table, scaling_table

MS = 1_000_000


def ms(t: int) -> int:
    return t * MS


def call(submit_ms: int, token_ms: list[int]) -> dict:
    return {
        "submit_ns": ms(submit_ms),
        "token_ns": [ms(t) for t in token_ms],
        "delivered": len(token_ms),
    }


A_SETTINGS = {
    "prompt_tokens": 4,
    "new_tokens": 3,
    "batch_size": 1,
    "warmup_requests": 0,
    "min_requests": 2,
    "model": "A",
    "device": "cpu:0-3",
}
B_SETTINGS = {**A_SETTINGS, "prompt_tokens": 6, "batch_size": 2, "model": "B", "device": "cpu:4-7"}


def result(release_ms: int, calls: list[dict], peak: int) -> dict:
    return {
        "release_ns": ms(release_ms),
        "met_ns": calls[-1]["token_ns"][-1],
        "calls": calls,
        "load_s": 1.25,
        "warmup_s": 0.5,
        "memory": {
            "peak_mem_bytes": peak,
            "mem_reserved_peak_bytes": None,
            "mem_source": "ru_maxrss",
        },
        "device_info": {"kind": "cpu", "cores": 4},
    }


def record(layout: str, results: dict, *, status="ok", error="", scenario="s") -> dict:
    settings = {"A": A_SETTINGS, "B": B_SETTINGS}
    return {
        "spec": {
            "scenario": scenario,
            "precision": "bf16",
            "layout": layout,
            "device": "cpu",
            "allocator": "",
            "duration_s": 2,
            "seed": 0,
            "timeout_s": 1800,
            "slots": {n: settings[n] for n in results},
        },
        "status": status,
        "error": error,
        "backend": {"kind": "cpu"},
        "host": "testhost",
        "environment": {"python": "3.11", "torch": "2.13.0"},
        "elapsed_s": 10.0,
        "slots": {
            n: {
                "slot": {"name": n},
                "device": settings[n]["device"],
                "model": n,
                "settings": settings[n],
                "phase": "done",
                "result": r,
            }
            for n, r in results.items()
        },
    }


def alone_a() -> dict:
    # 4 calls of 500 ms from 10.0 s: window 10.0-12.0 s (2 s), 12 tokens -> 6.0 tok/s.
    # Each: TTFT 100 ms, TPOT 200 ms, E2E 500 ms. Released at 10.0 s (workers submit at once).
    calls = [call(10_000 + 500 * i, [10_100 + 500 * i, 10_300 + 500 * i, 10_500 + 500 * i])
             for i in range(4)]  # fmt: skip
    return record("alone_A", {"A": result(10_000, calls, peak=1000)})


def alone_b() -> dict:
    # batch 2, 4 calls of 500 ms from 50.0 s: window 2 s, 4*3*2 = 24 tokens -> 12.0 tok/s.
    calls = [call(50_000 + 500 * i, [50_100 + 500 * i, 50_300 + 500 * i, 50_500 + 500 * i])
             for i in range(4)]  # fmt: skip
    return record("alone_B", {"B": result(50_000, calls, peak=2000)})


def colocated() -> dict:
    # Released (and first submitting) at 100.1 s (A) and 100.2 s (B);
    # B's last token is at 102.2 s, A's at 102.5 s: window 100.2-102.2 s = 2 s,
    # span 100.1-102.5 s = 2.4 s.
    a_calls = [
        call(100_100, [100_150, 100_180, 100_250]),  # 1 token inside, no prefill, no request
        call(100_400, [100_600, 100_900, 101_200]),  # 3 inside, request: TTFT 200, E2E 800
        call(101_200, [101_500, 101_800, 102_100]),  # 3 inside, request: TTFT 300, E2E 900
        call(102_100, [102_200, 102_350, 102_500]),  # 1 inside (end inclusive), prefill only
    ]  # A: 8 tokens -> 4.0 tok/s; 2 requests; prefill 3 calls * 4 = 12 -> 6.0 tok/s
    b_calls = [
        call(100_200, [100_300, 100_400, 100_500]),
        call(100_500, [100_900, 101_300, 101_700]),
        call(101_700, [101_900, 102_000, 102_200]),
    ]  # B (batch 2): 18 tokens -> 9.0 tok/s; 6 requests; prefill 3 * 2 * 6 = 36 -> 18.0 tok/s
    return record(
        "colocated",
        {"A": result(100_100, a_calls, peak=3000), "B": result(100_200, b_calls, peak=4000)},
    )


def oom_colocated() -> dict:
    a = result(100_100, [call(100_100, [100_150, 100_180, 100_250])], peak=3000)
    return record(
        "colocated",
        {"A": a, "B": None},
        status="oom",
        error="slot B: MemoryError: injected out-of-memory",
    )


def frame(*records) -> pd.DataFrame:
    rows = [row for r in records for row in run_tables(r)[0]]
    return pd.DataFrame(rows).reindex(columns=RUN_COLUMNS)


# --- run rows ---------------------------------------------------------------------------------


def test_a_runs_warnings_reach_every_row_of_it():
    record = colocated()
    record["warnings"] = ["bf16 is emulated on this CPU", "second"]
    rows, _ = run_tables(record)
    assert [r["warnings"] for r in rows] == ["bf16 is emulated on this CPU; second"] * 2
    assert run_tables(alone_a())[0][0]["warnings"] == ""  # records from before warnings existed


def test_alone_row():
    rows, requests = run_tables(alone_a(), {"A": "synthetic:llama-3.2-tiny"})
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == set(RUN_COLUMNS)
    assert row["run_id"] == "s/bf16/r1/alone_A"
    # 4 requests of 3 tokens: 4 values per latency, 8 gaps; too few for any p90 or p99
    assert (row["ttft_n"], row["itl_n"]) == (4, 8)
    assert row["percentile_note"] == "; ".join(
        f"{m} {p}: max, n = {8 if m == 'itl' else 4}"
        for m in ("ttft", "tpot", "itl", "e2e")
        for p in ("p90", "p99")
    )
    assert (row["scenario"], row["precision"], row["layout"], row["slot"]) == (
        "s",
        "bf16",
        "alone_A",
        "A",
    )
    assert row["model"] == "synthetic:llama-3.2-tiny"
    assert (row["backend"], row["device"], row["status"], row["error"]) == (
        "cpu",
        "cpu:0-3",
        "ok",
        "",
    )
    assert row["valid"] is True
    assert row["invalid_reasons"] == ""
    assert (row["prompt_tokens"], row["new_tokens"], row["batch_size"]) == (4, 3, 1)
    # relative to the release at 10.0 s
    assert row["window_start_s"] == pytest.approx(0.0)
    assert row["window_end_s"] == pytest.approx(2.0)
    assert row["window_s"] == pytest.approx(2.0)
    assert row["slot_start_s"] == pytest.approx(0.0)
    assert row["slot_end_s"] == pytest.approx(2.0)
    assert row["span_s"] == pytest.approx(2.0)
    assert row["overlap_frac"] == pytest.approx(1.0)
    assert row["requests"] == 4
    assert row["output_tokens"] == 12
    assert row["throughput_tok_s"] == pytest.approx(6.0)
    assert row["prefill_tok_s"] == pytest.approx(8.0)  # 4 calls * 4 tokens / 2 s
    assert row["request_rate_rps"] == pytest.approx(2.0)
    assert row["ttft_ms_mean"] == pytest.approx(100.0)
    assert row["tpot_ms_p99"] == pytest.approx(200.0)
    assert row["itl_ms_max"] == pytest.approx(200.0)
    assert row["e2e_ms_p50"] == pytest.approx(500.0)
    assert (row["peak_mem_bytes"], row["mem_reserved_peak_bytes"], row["mem_source"]) == (
        1000,
        None,
        "ru_maxrss",
    )
    assert (row["load_s"], row["warmup_s"]) == (1.25, 0.5)
    assert len(requests) == 4
    assert [r["submit_s"] for r in requests] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert all(r["in_window"] for r in requests)
    assert [r["ttft_ms"] for r in requests] == pytest.approx([100.0] * 4)
    assert [r["itl_ms_mean"] for r in requests] == pytest.approx([200.0] * 4)


def test_model_defaults_to_slot_name_without_sources():
    rows, _ = run_tables(alone_b())
    assert rows[0]["model"] == "B"


def test_colocated_rows():
    rows, requests = run_tables(colocated())
    by = {r["slot"]: r for r in rows}
    assert list(by) == ["A", "B"]
    for r in rows:
        assert r["run_id"] == "s/bf16/r1/colocated"
        assert r["valid"] is True, r["invalid_reasons"]
        # relative to the earliest release (A's, at 100.1 s)
        assert r["window_start_s"] == pytest.approx(0.1)
        assert r["window_end_s"] == pytest.approx(2.1)
        assert r["window_s"] == pytest.approx(2.0)
        assert r["span_s"] == pytest.approx(2.4)
        assert r["overlap_frac"] == pytest.approx(2.0 / 2.4)
    a, b = by["A"], by["B"]
    assert (a["slot_start_s"], a["slot_end_s"]) == pytest.approx((0.0, 2.4))
    assert (b["slot_start_s"], b["slot_end_s"]) == pytest.approx((0.1, 2.1))
    assert (a["output_tokens"], a["requests"]) == (8, 2)
    assert a["throughput_tok_s"] == pytest.approx(4.0)
    assert a["prefill_tok_s"] == pytest.approx(6.0)
    assert a["request_rate_rps"] == pytest.approx(1.0)
    assert a["ttft_ms_mean"] == pytest.approx(250.0)  # TTFTs 200, 300
    assert a["e2e_ms_p90"] == pytest.approx(890.0)  # 800 + 0.9 * 100
    assert (b["output_tokens"], b["requests"]) == (18, 6)
    assert b["throughput_tok_s"] == pytest.approx(9.0)
    assert b["prefill_tok_s"] == pytest.approx(18.0)
    assert b["request_rate_rps"] == pytest.approx(3.0)
    assert (a["peak_mem_bytes"], b["peak_mem_bytes"]) == (3000, 4000)
    # one request row per sequence: A 4 calls * 1, B 3 calls * 2
    assert len(requests) == 10
    a_req = [r for r in requests if r["slot"] == "A"]
    b_req = [r for r in requests if r["slot"] == "B"]
    assert [r["in_window"] for r in a_req] == [False, True, True, False]
    assert [(r["call"], r["index"]) for r in b_req] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
    ]
    assert all(r["in_window"] for r in b_req)
    assert [r["submit_s"] for r in a_req] == pytest.approx([0.0, 0.3, 1.1, 2.0])


def test_a_call_the_stop_cut_is_marked_and_never_in_the_window():
    record = colocated()
    # A's last call cut after two tokens, at 102.4 s: past B's end, so the window stays.
    cut_call = {**call(102_100, [102_200, 102_350]), "cut_ns": ms(102_400)}
    record["slots"]["A"]["result"]["calls"][-1] = cut_call
    rows, requests = run_tables(record)
    assert all(r["valid"] for r in rows), [r["invalid_reasons"] for r in rows]
    a_req = [r for r in requests if r["slot"] == "A"]
    assert [r["cut"] for r in a_req] == [False, False, False, True]
    assert a_req[-1]["new_tokens"] == 2 and a_req[-1]["in_window"] is False
    assert not any(r["cut"] for r in requests if r["slot"] == "B")


def test_failed_run_rows_are_invalid_and_empty():
    rows, requests = run_tables(oom_colocated())
    assert [r["slot"] for r in rows] == ["A", "B"]
    assert requests == []
    for r in rows:
        assert r["status"] == "oom"
        assert r["valid"] is False
        assert r["invalid_reasons"] == "status oom: slot B: MemoryError: injected out-of-memory"
    df = frame(oom_colocated())
    assert list(df.columns) == RUN_COLUMNS
    for col in ("throughput_tok_s", "output_tokens", "window_s", "ttft_ms_mean", "overlap_frac"):
        assert df[col].isna().all(), col
    a, b = df.iloc[0], df.iloc[1]
    assert a["peak_mem_bytes"] == 3000  # the slot that ran still reports its memory
    assert a["load_s"] == 1.25
    assert math.isnan(b["peak_mem_bytes"])
    assert math.isnan(b["load_s"])


def test_invalid_run_keeps_its_numbers_and_says_why():
    rec = alone_a()
    rec["spec"]["duration_s"] = 3  # the 2 s window is now too short
    rows, _ = run_tables(rec)
    assert rows[0]["valid"] is False
    assert rows[0]["invalid_reasons"] == "window 2.00 s is shorter than duration_s 3 s"
    assert rows[0]["throughput_tok_s"] == pytest.approx(6.0)


# --- one pass per record ---------------------------------------------------------------------


def test_run_id_is_spelled_once():
    spec = colocated()["spec"]
    assert columns.run_id(spec) == "s/bf16/r1/colocated"
    assert columns.run_identity(spec) == {
        "run_id": "s/bf16/r1/colocated",
        "scenario": "s",
        "precision": "bf16",
        # Outside a repeat block (a record without block facts): block 1, no position.
        "repeat": 1,
        "position": None,
        "layout": "colocated",
    }
    assert list(columns.run_identity(spec)) == columns.RUN_IDENTITY
    in_block = {**spec, "repeat": 3, "position": 2}
    assert columns.run_id(in_block) == "s/bf16/r3/colocated"
    assert columns.run_identity(in_block)["position"] == 2


def test_named_column_groups_cover_the_run_columns_in_order():
    groups = [
        columns.IDENTITY,
        columns.SETUP_COLUMNS,
        columns.VALIDITY_COLUMNS,
        columns.WORKLOAD_COLUMNS,
        columns.WINDOW_COLUMNS,
        columns.THROUGHPUT_COLUMNS,
        columns.LATENCY_COLUMNS,
        columns.TPOT_SPREAD_COLUMNS,
        columns.LATENCY_COUNT_COLUMNS,
        columns.ARRIVAL_COLUMNS,
        columns.LOCKSTEP_COLUMNS,
        columns.MEMORY_COLUMNS,
        columns.WEIGHT_COLUMNS,
        columns.ROOFLINE_COLUMNS,
        columns.TELEMETRY_RUN_COLUMNS,
        columns.STARTUP_COLUMNS,
        columns.MACHINE_STATE_COLUMNS,
    ]
    assert [c for g in groups for c in g] == RUN_COLUMNS
    assert len(set(RUN_COLUMNS)) == len(RUN_COLUMNS)
    # the telemetry group: util_pct up to, not including, load_s
    start = RUN_COLUMNS.index("util_pct")
    assert RUN_COLUMNS[start : RUN_COLUMNS.index("load_s")] == columns.TELEMETRY_RUN_COLUMNS
    assert columns.PRECISION_COLUMNS[2:11] == columns.CONVERSION_COLUMNS


WATTS = {"A": 10.0, "B": 20.0}


def powered(rec: dict) -> tuple[dict, list[dict]]:
    """``rec`` with a telemetry section, and constant power samples of each slot's device
    every 0.5 s from 99.0 s to 103.5 s (idle: 99.0-100.0 s)."""
    rec["telemetry"] = {"idle_start_ns": ms(99_000), "idle_end_ns": ms(100_000)}
    samples = [
        {
            "t_ns": ms(t),
            "slots": name,
            "device": slot["device"],
            "metric": "power_w",
            "value": WATTS[name],
            "source": "test",
        }
        for name, slot in rec["slots"].items()
        for t in range(99_000, 104_000, 500)
    ]
    return rec, samples


def counting(monkeypatch, calls: dict, module, name: str) -> None:
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_record_rows_reduce_each_record_once(monkeypatch):
    from dualbench.analysis import metrics

    rec, samples = powered(colocated())
    calls = {}
    for name in ("co_window", "slot_metrics", "validity", "reduce_run_telemetry"):
        counting(monkeypatch, calls, single_pass, name)
    counting(monkeypatch, calls, metrics, "slot_metrics")  # validity reuses the slots' rows
    rows = record_rows(rec, None, samples)
    assert calls == {"co_window": 1, "slot_metrics": 2, "validity": 1, "reduce_run_telemetry": 1}
    assert [r["valid"] for r in rows.runs] == [True, True]
    by = {r["slot"]: r for r in rows.runs}
    for name in ("A", "B"):  # 2 s window at constant power
        assert by[name]["energy_j"] == pytest.approx(2.0 * WATTS[name])
    assert rows.energy["run_id"] == "s/bf16/r1/colocated"
    assert rows.energy["devices"] == "cpu:0-3 + cpu:4-7"
    assert rows.energy["energy_j"] == pytest.approx(2.0 * (10.0 + 20.0))
    assert rows.energy["output_tokens"] == 8 + 18
    assert len(rows.telemetry) == len(samples)
    assert rows.telemetry[0]["t_s"] == pytest.approx(-1.1)  # from A's release at 100.1 s


def test_the_older_entry_points_give_the_single_pass_rows():
    rec, samples = powered(colocated())
    rows = record_rows(rec, {"A": "a"}, samples)
    run_rows, request_rows = run_tables(rec, {"A": "a"}, samples)
    pd.testing.assert_frame_equal(pd.DataFrame(rows.runs), pd.DataFrame(run_rows))
    pd.testing.assert_frame_equal(pd.DataFrame(rows.requests), pd.DataFrame(request_rows))
    assert energy_row(rec, samples, run_rows) == rows.energy


def test_record_rows_without_telemetry_or_of_a_failed_run_say_why():
    rows = record_rows(alone_a())
    assert rows.energy == {**columns.run_identity(alone_a()["spec"]),
                           "energy_note": "no telemetry recorded"}  # fmt: skip
    assert rows.runs[0]["energy_note"] == "no telemetry recorded"
    assert rows.runs[0]["util_pct"] is None
    assert rows.telemetry == []
    failed = record_rows(oom_colocated(), None, [])
    assert failed.energy["energy_note"] == "status oom"
    assert failed.energy == energy_row(oom_colocated(), [], failed.runs)
    assert [r["energy_note"] for r in failed.runs] == ["status oom"] * 2
    assert failed.requests == []


# --- scaling ----------------------------------------------------------------------------------


def test_scaling_table_exact():
    table = scaling_table(frame(alone_a(), alone_b(), colocated()))
    assert list(table.columns) == columns.SCALING_COLUMNS
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["scenario"], row["precision"], row["repeat"]) == ("s", "bf16", 1)
    assert (row["layout"], row["schedule"], row["models"], row["k"]) == (
        "colocated",
        "free",
        "A+B",
        2,
    )
    assert row["v1_sum"] == pytest.approx(18.0)  # 6 + 12
    assert row["v1_mean"] == pytest.approx(9.0)  # (6 + 12) / 2
    assert row["v_total"] == pytest.approx(13.0)  # 4 + 9
    assert row["growth_per_model"] == pytest.approx(4 / 9)  # (13 / 9 - 1) / (2 - 1)
    assert row["scaling_efficiency"] == pytest.approx(13 / 18)  # 13 / (6 + 12)
    assert bool(row["valid"]) is True
    assert row["note"] == ""


def test_interference_table_exact():
    table = interference_table(frame(alone_a(), alone_b(), colocated()))
    assert list(table.columns) == columns.INTERFERENCE_COLUMNS
    assert list(zip(table.victim, table.neighbours, strict=True)) == [("A", "B"), ("B", "A")]
    a, b = table.iloc[0], table.iloc[1]
    assert (a["layout"], a["schedule"]) == ("colocated", "free")
    assert a["slowdown_throughput"] == pytest.approx(1.5)  # 6 / 4
    assert b["slowdown_throughput"] == pytest.approx(4 / 3)  # 12 / 9
    assert a["slowdown_ttft_p50"] == pytest.approx(250 / 100)  # TTFTs 200, 300 vs 100 alone
    assert a["slowdown_e2e_p50"] == pytest.approx(850 / 500)
    assert bool(a["valid"]) and bool(b["valid"])


def test_scaling_table_missing_layout():
    table = scaling_table(frame(alone_a(), colocated()))
    row = table.iloc[0]
    assert row["note"] == "missing runs: alone_B"
    assert bool(row["valid"]) is False
    assert row["v_total"] == pytest.approx(13.0)
    for col in ("v1_sum", "v1_mean", "growth_per_model", "scaling_efficiency"):
        assert math.isnan(row[col]), col
    slow = interference_table(frame(alone_a(), colocated())).set_index("victim")
    assert slow.loc["A", "slowdown_throughput"] == pytest.approx(1.5)
    assert bool(slow.loc["A", "valid"]) is True
    assert math.isnan(slow.loc["B", "slowdown_throughput"])
    assert bool(slow.loc["B", "valid"]) is False


def test_scaling_table_with_failed_colocated_run():
    table = scaling_table(frame(alone_a(), alone_b(), oom_colocated()))
    row = table.iloc[0]
    assert bool(row["valid"]) is False
    assert row["note"] == "depends on an invalid or failed run"
    assert row["v1_mean"] == pytest.approx(9.0)
    for col in ("v_total", "growth_per_model", "scaling_efficiency"):
        assert math.isnan(row[col]), col
    slow = interference_table(frame(alone_a(), alone_b(), oom_colocated()))
    assert slow["slowdown_throughput"].isna().all()
    assert not slow["valid"].any()


def test_scaling_table_one_row_per_block_and_group_layout():
    other = [alone_a(), alone_b(), colocated()]
    for r in other:
        r["spec"]["scenario"] = "t"
    # Scenario t has no group layout: it has no point on a scaling curve.
    table = scaling_table(frame(alone_a(), alone_b(), colocated(), *other[:2]))
    assert list(table["scenario"]) == ["s"]
    table = scaling_table(frame(alone_a(), alone_b(), colocated(), *other[:2], other[2]))
    assert list(table["scenario"]) == ["s", "t"]
    assert table.iloc[1]["v_total"] == pytest.approx(13.0)


# --- aggregate --------------------------------------------------------------------------------


def test_aggregate_writes_every_table(tmp_path):
    paths = []
    for name, rec in [("a", alone_a()), ("b", alone_b()), ("c", colocated())]:
        path = tmp_path / "runs" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(rec))
        paths.append(path)
    out = tmp_path / "metrics"
    sources = {"A": "synthetic:llama-3.2-tiny", "B": "synthetic:llama-3.2-mini"}
    aggregate(paths, out, sources)
    assert sorted(p.name for p in out.iterdir()) == [
        "answers.csv",
        "blocks.csv",
        "calibration.csv",
        "contention.csv",
        "contention_curve.csv",
        "contention_fits.csv",
        "energy.csv",
        "environment.json",
        "int4.csv",
        "interference.csv",
        "precisions.csv",
        "requests.csv",
        "runs.csv",
        "scaling.csv",
        "sessions.csv",
        "telemetry.csv",
    ]
    # no session summaries given: a header only
    assert list(pd.read_csv(out / "sessions.csv").columns) == columns.SESSION_COLUMNS
    # no calibration and no sweep: the contention tables are headers only
    assert list(pd.read_csv(out / "contention_fits.csv").columns) == (
        columns.CONTENTION_FIT_COLUMNS
    )
    assert pd.read_csv(out / "contention.csv").empty
    # no int4 runs, and records without conversion facts: headers only
    assert pd.read_csv(out / "int4.csv").empty
    assert list(pd.read_csv(out / "precisions.csv").columns) == columns.PRECISION_COLUMNS
    header = (out / "runs.csv").read_text().splitlines()[0]
    assert header.split(",") == RUN_COLUMNS
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4
    assert list(runs["throughput_tok_s"]) == pytest.approx([6.0, 12.0, 4.0, 9.0])
    assert list(runs["model"]) == [sources["A"], sources["B"], sources["A"], sources["B"]]
    requests = pd.read_csv(out / "requests.csv")
    assert list(requests.columns) == columns.REQUEST_COLUMNS
    assert len(requests) == 4 + 8 + 10
    scaling = pd.read_csv(out / "scaling.csv")
    assert scaling.loc[0, "v_total"] == pytest.approx(13.0)
    assert scaling.loc[0, "growth_per_model"] == pytest.approx(4 / 9)
    interference = pd.read_csv(out / "interference.csv")
    assert list(interference.columns) == columns.INTERFERENCE_COLUMNS
    assert list(interference["slowdown_throughput"]) == pytest.approx([1.5, 4 / 3])
    assert list(runs["schedule"]) == ["free"] * 4
    assert list(runs["turns"]) == [0] * 4 and runs["handoff_us_mean"].isna().all()
    env = json.loads((out / "environment.json").read_text())
    assert env["python"] == "3.11"
    assert env["models"] == sources
    assert env["devices"] == {
        "cpu:0-3": {"kind": "cpu", "cores": 4},
        "cpu:4-7": {"kind": "cpu", "cores": 4},
    }
    assert sorted(env["config"]) == [
        "s/bf16/r1/alone_A",
        "s/bf16/r1/alone_B",
        "s/bf16/r1/colocated",
    ]


def test_aggregate_with_a_failed_run_does_not_crash(tmp_path):
    path = tmp_path / "oom.json"
    path.write_text(json.dumps(oom_colocated()))
    aggregate([path], tmp_path / "out", {"A": "a", "B": "b"})
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["status"]) == ["oom", "oom"]
    assert list(runs["valid"]) == [False, False]
    assert runs["throughput_tok_s"].isna().all()
    scaling = pd.read_csv(tmp_path / "out" / "scaling.csv")
    assert scaling.loc[0, "note"] == "missing runs: alone_A, alone_B"


# --- INT4 against 16-bit ----------------------------------------------------------------------


def _with_int4(runs: pd.DataFrame, speedup: float, memory: float) -> pd.DataFrame:
    int4 = runs.copy()
    int4["precision"] = "int4"
    int4["throughput_tok_s"] *= speedup
    int4["tpot_ms_p50"] /= speedup
    int4["peak_mem_bytes"] *= memory
    return pd.concat([runs, int4], ignore_index=True)


def test_int4_table_ratios_and_pair():
    runs = _with_int4(frame(alone_a(), alone_b(), colocated()), speedup=2.5, memory=0.5)
    table = int4_table(runs)
    assert list(table.columns) == columns.INT4_COLUMNS
    assert list(zip(table.layout, table.slot, strict=True)) == [
        ("alone_A", "A"),
        ("alone_B", "B"),
        ("colocated", "A"),
        ("colocated", "B"),
        ("colocated", "A+B"),  # the group's sum
    ]
    assert set(table.baseline) == {"bf16"}
    assert table.throughput_tok_s_ratio.tolist() == pytest.approx([2.5] * 5)
    assert table.tpot_ms_p50_ratio[:4].tolist() == pytest.approx([0.4] * 4)
    assert table.peak_mem_bytes_ratio.tolist() == pytest.approx([0.5] * 5)
    pair = table.iloc[4]
    assert pair.throughput_tok_s_baseline == pytest.approx(4.0 + 9.0)
    assert pair.peak_mem_bytes_baseline == 3000 + 4000
    assert math.isnan(pair.ttft_ms_p50_ratio)


def test_int4_baseline_prefers_fp16_and_needs_int4():
    assert int4_baseline(["bf16", "fp16", "int4"]) == "fp16"
    assert int4_baseline(["fp32", "bf16", "int4"]) == "bf16"
    assert int4_baseline(["int4", "fp32"]) == "fp32"
    assert int4_baseline(["int4", "bf16"]) == "bf16"
    assert int4_baseline(["bf16", "fp16"]) is None
    assert int4_baseline(["int4"]) is None
    assert int4_table(frame(alone_a())).empty


def test_int4_pair_is_invalid_when_a_slot_is():
    runs = _with_int4(frame(colocated()), speedup=2.0, memory=1.0)
    runs.loc[(runs.precision == "int4") & (runs.slot == "B"), "valid"] = False
    table = int4_table(runs).set_index("slot")
    assert table.loc["A", "valid"] and not table.loc["B", "valid"]
    assert not table.loc["A+B", "valid"]
