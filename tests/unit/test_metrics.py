"""Metrics from hand-made timestamps: every expected value below is worked out by hand from the
definitions in DESIGN §6 / definitions.DEFINITIONS, never by calling the code under test."""

from __future__ import annotations

import math

import pytest

from dualbench.analysis import metrics
from dualbench.analysis.definitions import DEFINITIONS
from dualbench.analysis.metrics import (
    co_window,
    request_latencies,
    slot_metrics,
    summarize,
    validity,
)

MS = 1_000_000  # ns per ms


def ms(t: float) -> int:
    """A timestamp in ns from milliseconds (integers only, as perf_counter_ns gives)."""
    return int(t) * MS


def call(submit_ms: int, token_ms: list[int], delivered: int | None = None) -> dict:
    return {
        "submit_ns": ms(submit_ms),
        "token_ns": [ms(t) for t in token_ms],
        "delivered": len(token_ms) if delivered is None else delivered,
    }


def closed_loop(start_ms: int, n_calls: int, step_ms: int, new_tokens: int) -> list[dict]:
    """Back-to-back calls: each submits when the previous one's last token arrives, and a token
    arrives every ``step_ms`` (so a call lasts new_tokens * step_ms)."""
    calls, t = [], start_ms
    for _ in range(n_calls):
        tokens = [t + step_ms * (k + 1) for k in range(new_tokens)]
        calls.append(call(t, tokens))
        t = tokens[-1]
    return calls


def assert_stats(stats: dict, mean, p50, p90, p99, mx):
    assert list(stats) == ["mean", "p50", "p90", "p99", "max"]
    assert stats["mean"] == pytest.approx(mean, rel=1e-12)
    assert stats["p50"] == pytest.approx(p50, rel=1e-12)
    assert stats["p90"] == pytest.approx(p90, rel=1e-12)
    assert stats["p99"] == pytest.approx(p99, rel=1e-12)
    assert stats["max"] == pytest.approx(mx, rel=1e-12)


# --- per request ------------------------------------------------------------------------------


def test_request_latencies_four_tokens():
    # submit 1000 ms; tokens at 1050, 1080, 1120, 1170 ms
    got = request_latencies(ms(1000), [ms(1050), ms(1080), ms(1120), ms(1170)])
    assert got["ttft_ms"] == 50.0
    assert got["tpot_ms"] == pytest.approx(40.0)  # (1170 - 1050) / (4 - 1)
    assert got["e2e_ms"] == 170.0
    assert got["itl_ms"] == [30.0, 40.0, 50.0]


def test_request_latencies_sub_millisecond_resolution():
    got = request_latencies(0, [1_500_000, 2_250_000])
    assert got["ttft_ms"] == 1.5
    assert got["tpot_ms"] == 0.75
    assert got["e2e_ms"] == 2.25
    assert got["itl_ms"] == [0.75]


def test_request_latencies_single_token_has_no_tpot():
    got = request_latencies(ms(100), [ms(125)])
    assert got["ttft_ms"] == 25.0
    assert got["e2e_ms"] == 25.0
    assert math.isnan(got["tpot_ms"])
    assert got["itl_ms"] == []


def test_request_latencies_no_tokens_is_all_nan():
    got = request_latencies(ms(100), [])
    assert math.isnan(got["ttft_ms"])
    assert math.isnan(got["tpot_ms"])
    assert math.isnan(got["e2e_ms"])
    assert got["itl_ms"] == []


# --- statistics -------------------------------------------------------------------------------


def test_summarize_one_to_ten_linear_interpolation():
    # numpy linear: position (n-1)*q = 9q over sorted [1..10]
    # p50 -> 4.5 -> 5.5; p90 -> 8.1 -> 9 + 0.1 = 9.1; p99 -> 8.91 -> 9.91
    expected = (5.5, 5.5, 9.1, 9.91, 10.0)
    assert_stats(summarize(list(range(1, 11))), *expected)
    assert_stats(summarize(list(range(10, 0, -1))), *expected)  # order does not matter


def test_summarize_drops_nan():
    # [1, 3]: p90 position 0.9 -> 1 + 0.9 * 2 = 2.8; p99 -> 2.98
    assert_stats(summarize([1.0, math.nan, 3.0]), 2.0, 2.0, 2.8, 2.98, 3.0)


@pytest.mark.parametrize("values", [[], [math.nan, math.nan]])
def test_summarize_empty_is_nan(values):
    stats = summarize(values)
    assert list(stats) == ["mean", "p50", "p90", "p99", "max"]
    assert all(math.isnan(v) for v in stats.values())


# --- co-located window ------------------------------------------------------------------------


def released(release_ms: int, calls: list[dict]) -> dict:
    return {"release_ns": ms(release_ms), "calls": calls}


def test_co_window_latest_release_to_earliest_last_token():
    a = released(100, [call(100, [200, 300, 500]), call(500, [600, 700, 900])])
    b = released(300, [call(300, [400, 500, 700])])
    assert co_window({"A": a, "B": b}) == (ms(300), ms(700))


def test_co_window_uses_the_latest_token_of_any_call():
    # a slot's end is its latest token, not the last token of its last call
    a = released(0, [call(0, [100, 1000]), call(1000, [1100, 1200])])
    b = released(50, [call(50, [1500, 1600])])
    assert co_window({"A": a, "B": b}) == (ms(50), ms(1200))


def test_co_window_alone_is_own_release_to_last_token():
    a = released(40, closed_loop(40, 3, 100, 2))  # 40 -> 240 -> 440 -> 640
    assert co_window({"A": a}) == (ms(40), ms(640))


def test_co_window_no_overlap_is_empty():
    a = released(100, [call(100, [150, 200])])
    b = released(300, [call(300, [350, 400])])
    start, end = co_window({"A": a, "B": b})
    assert (start, end) == (ms(300), ms(200))
    assert end <= start


def test_a_single_thread_window_is_its_process_span():
    # One process served A then B, twice: 0-300, 300-600, 600-900, 900-1200 ms. Its window is
    # the release to its last call's end, so each slot has its two calls inside, where the
    # co-located rule (B's first submit 300 .. A's last token 900) would hold one each.
    group = {"process_slots": ["A", "B"], "streams": False}
    a = {**released(0, [call(0, [150, 300]), call(600, [750, 900])]), "single_thread": group}
    b = {**released(0, [call(300, [450, 600]), call(900, [1050, 1200])]), "single_thread": group}
    window = co_window({"A": a, "B": b})
    assert window == (0, ms(1200))
    settings = {"batch_size": 1, "prompt_tokens": 4}
    assert [slot_metrics(r, settings, window)["requests"] for r in (a, b)] == [2, 2]


def test_co_window_slot_without_calls_is_empty():
    a = released(100, [call(100, [150, 200])])
    assert co_window({"A": a, "B": released(100, [])}) == (0, 0)


def cut(submit_ms: int, token_ms: list[int], cut_ms: int) -> dict:
    """A call the trial's stop cut at ``cut_ms`` after ``token_ms`` (dualbench.measure.engine)."""
    return {**call(submit_ms, token_ms), "cut_ns": ms(cut_ms)}


def test_a_cut_call_ends_its_slot_at_the_cut_even_without_a_token():
    # A met first and started a call at 600 ms; the stop cut it at 720 ms, before its first
    # token. A was computing until then, so the window still ends at B's last token (700 ms),
    # not at A's previous one (600 ms), which would leave B's only request outside it.
    a = released(0, [call(0, [300, 600]), cut(600, [], 720)])
    b = released(0, [call(0, [350, 700])])
    assert co_window({"A": a, "B": b}) == (0, ms(700))


def test_a_cut_call_is_never_a_finished_request_nor_a_short_delivery():
    # B's second call was cut at 1000 ms after two of its four tokens. The window ends at the
    # cut (A ran on to 1200 ms): the cut call's tokens lie inside it and count as output, but
    # it is not a finished request, and its two tokens are not a delivery shortfall.
    calls = {
        "A": closed_loop(0, 2, 150, 4),  # 0-600, 600-1200
        "B": [call(0, [100, 200, 300, 400]), cut(400, [700, 900], 1000)],
    }
    record = make_record(calls, duration_s=0.9, A={"min_requests": 1}, B={"min_requests": 1})
    window = window_of(record)
    assert window == (0, ms(1000))
    row = slot_metrics(record["slots"]["B"]["result"], record["slots"]["B"]["settings"], window)
    assert (row["requests"], row["output_tokens"]) == (1, 6)
    assert validity(record, window) == []


def test_first_request_of_the_earlier_released_slot_counts():
    # B is released 1 ms after A; A's first request was submitted before B's release but all
    # its tokens lie inside the window, so it counts (it would be lost if the window started
    # at the latest first submit).
    a = released(0, [call(0, [200, 300]), call(300, [500, 600])])
    b = released(1, [call(1, [250, 400]), call(400, [650, 700])])
    window = co_window({"A": a, "B": b})
    assert window == (ms(1), ms(600))
    settings = {"batch_size": 1, "prompt_tokens": 4}
    assert slot_metrics(a, settings, window)["requests"] == 2
    assert slot_metrics(b, settings, window)["requests"] == 1


# --- slot metrics -----------------------------------------------------------------------------

# Window [10 000, 12 000] ms: exactly 2 s.
WINDOW = (ms(10_000), ms(12_000))
WINDOW_CALLS = [
    # starts before the window: its tokens at 10 100 and 10 300 count, nothing else does
    call(9_600, [9_700, 9_900, 10_100, 10_300]),
    # fully inside: TTFT 100, TPOT 200, E2E 700
    call(10_300, [10_400, 10_600, 10_800, 11_000]),
    # fully inside: TTFT 200, TPOT 200, E2E 800; gaps 150, 150, 300
    call(11_000, [11_200, 11_350, 11_500, 11_800]),
    # first token inside (prefill counts), 11 900 and 12 000 (end is inclusive) count
    call(11_800, [11_900, 12_000, 12_100, 12_200]),
    # entirely after the window
    call(12_200, [12_300, 12_400, 12_500, 12_600]),
]


def test_slot_metrics_counts_only_tokens_inside_the_window():
    row = slot_metrics({"calls": WINDOW_CALLS}, {"batch_size": 1, "prompt_tokens": 5}, WINDOW)
    assert row["window_s"] == 2.0
    assert row["output_tokens"] == 12  # 2 + 4 + 4 + 2 + 0
    assert row["throughput_tok_s"] == 6.0  # 12 / 2 s
    assert row["requests"] == 2  # calls 1 and 2
    assert row["request_rate_rps"] == 1.0
    assert row["prefill_tok_s"] == 7.5  # calls 1, 2, 3: 3 * 5 prompt tokens / 2 s
    assert_stats({k: row[f"ttft_ms_{k}"] for k in metrics.STATS}, 150, 150, 190, 199, 200)
    assert_stats({k: row[f"tpot_ms_{k}"] for k in metrics.STATS}, 200, 200, 200, 200, 200)
    assert_stats({k: row[f"e2e_ms_{k}"] for k in metrics.STATS}, 750, 750, 790, 799, 800)
    # gaps [150, 150, 200, 200, 200, 300]: p90 position 4.5 -> 250, p99 4.95 -> 295
    assert_stats({k: row[f"itl_ms_{k}"] for k in metrics.STATS}, 200, 200, 250, 295, 300)
    # the statistics' counts: 2 requests; their 3 gaps each
    assert (row["ttft_n"], row["tpot_n"], row["e2e_n"], row["itl_n"]) == (2, 2, 2, 6)


def test_slot_metrics_batch_multiplies_tokens_requests_and_prefill():
    row = slot_metrics({"calls": WINDOW_CALLS}, {"batch_size": 2, "prompt_tokens": 5}, WINDOW)
    assert row["output_tokens"] == 24
    assert row["throughput_tok_s"] == 12.0
    assert row["requests"] == 4
    assert row["request_rate_rps"] == 2.0
    assert row["prefill_tok_s"] == 15.0  # 3 calls * 2 sequences * 5 tokens / 2 s
    # each sequence counts once: TTFT values [100, 100, 200, 200]; p90 position 2.7 -> 200
    assert_stats({k: row[f"ttft_ms_{k}"] for k in metrics.STATS}, 150, 150, 200, 200, 200)
    # every gap twice: [150 x4, 200 x6, 300 x2]; p90 position 9.9 -> 290, p99 10.89 -> 300
    assert_stats({k: row[f"itl_ms_{k}"] for k in metrics.STATS}, 200, 200, 290, 300, 300)
    assert (row["ttft_n"], row["itl_n"]) == (4, 12)  # every sequence, every gap of it


def test_slot_metrics_prefill_follows_the_first_token():
    settings = {"batch_size": 1, "prompt_tokens": 100}
    # first token inside, last after the window: prefill counts, the request does not
    late = slot_metrics({"calls": [call(11_500, [11_900, 12_500])]}, settings, WINDOW)
    assert (late["prefill_tok_s"], late["requests"], late["output_tokens"]) == (50.0, 0, 1)
    # first token before the window, last inside: neither prefill nor request
    early = slot_metrics({"calls": [call(9_500, [9_900, 10_500])]}, settings, WINDOW)
    assert (early["prefill_tok_s"], early["requests"], early["output_tokens"]) == (0.0, 0, 1)


def test_slot_metrics_empty_window_gives_nan_rates():
    row = slot_metrics(
        {"calls": WINDOW_CALLS}, {"batch_size": 1, "prompt_tokens": 5}, (ms(500), ms(400))
    )
    assert row["window_s"] == 0
    assert row["output_tokens"] == 0
    assert row["requests"] == 0
    assert math.isnan(row["throughput_tok_s"])
    assert math.isnan(row["prefill_tok_s"])
    assert math.isnan(row["request_rate_rps"])
    assert math.isnan(row["ttft_ms_mean"])


# --- validity ---------------------------------------------------------------------------------

SETTINGS = {"prompt_tokens": 8, "new_tokens": 4, "batch_size": 1, "min_requests": 2}


def make_record(calls: dict[str, list[dict]], *, duration_s=2, status="ok", error="", **settings):
    per_slot = {name: {**SETTINGS, **settings.get(name, {})} for name in calls}
    return {
        "spec": {"duration_s": duration_s},
        "status": status,
        "error": error,
        "slots": {
            name: {
                "settings": per_slot[name],
                "result": {"release_ns": c[0]["submit_ns"] if c else 0, "calls": c},
            }
            for name, c in calls.items()
        },
    }


def valid_calls() -> dict[str, list[dict]]:
    # A: 0-600, 600-1200, 1200-1800, 1800-2400 ms; B: 100-1100, 1100-2100, 2100-3100 ms.
    # Window 100 (B's release) .. 2400 ms = 2.3 s; inside: A calls 0-3 (4 requests: the first
    # one's tokens start at 150), B calls 0-1 (2 requests).
    return {"A": closed_loop(0, 4, 150, 4), "B": closed_loop(100, 3, 250, 4)}


def window_of(record):
    return co_window({n: s["result"] for n, s in record["slots"].items()})


def test_valid_run_has_no_reasons():
    record = make_record(valid_calls())
    assert window_of(record) == (ms(100), ms(2400))
    assert validity(record, window_of(record)) == []


def test_status_not_ok_is_the_only_reason():
    record = make_record(valid_calls(), status="timeout", error="run exceeded its time limit")
    assert validity(record, window_of(record)) == ["status timeout: run exceeded its time limit"]


def test_token_count_mismatch():
    calls = valid_calls()
    short = calls["A"][1]
    short["token_ns"], short["delivered"] = short["token_ns"][:3], 3
    record = make_record(calls)
    assert validity(record, window_of(record)) == [
        "slot A: 1 call(s) delivered [3] tokens instead of 4"
    ]


def test_timestamp_count_mismatch_is_caught_even_when_delivered_is_right():
    calls = valid_calls()
    calls["B"][2]["token_ns"] = calls["B"][2]["token_ns"][:3]  # delivered still says 4
    record = make_record(calls)
    reasons = validity(record, window_of(record))
    assert len(reasons) == 1
    assert reasons[0].startswith("slot B: 1 call(s) delivered")


def test_no_overlap():
    record = make_record({"A": closed_loop(0, 4, 150, 4), "B": closed_loop(3000, 3, 250, 4)})
    window = window_of(record)
    assert window == (ms(3000), ms(2400))
    assert validity(record, window) == [
        "slots did not overlap",
        "slot A: 0 requests finished inside the window, min_requests is 2",
        "slot B: 0 requests finished inside the window, min_requests is 2",
    ]


def test_touching_slots_do_not_overlap():
    # B submits exactly when A's last token arrives: a zero-length window
    record = make_record({"A": closed_loop(0, 4, 150, 4), "B": closed_loop(2400, 3, 250, 4)})
    assert window_of(record) == (ms(2400), ms(2400))
    assert validity(record, window_of(record))[0] == "slots did not overlap"


def test_window_shorter_than_duration():
    record = make_record(valid_calls(), duration_s=3)
    assert validity(record, window_of(record)) == ["window 2.30 s is shorter than duration_s 3 s"]


def test_window_within_one_percent_of_duration_is_valid():
    # 2.3 s >= 0.99 * 2.32 s = 2.2968 s
    record = make_record(valid_calls(), duration_s=2.32)
    assert validity(record, window_of(record)) == []


def test_fewer_than_min_requests_inside_the_window():
    record = make_record(valid_calls(), A={"min_requests": 5}, B={"min_requests": 3})
    assert validity(record, window_of(record)) == [
        "slot A: 4 requests finished inside the window, min_requests is 5",
        "slot B: 2 requests finished inside the window, min_requests is 3",
    ]


def test_validity_reuses_the_slot_rows_it_is_given():
    record = make_record(valid_calls(), A={"min_requests": 5}, B={"min_requests": 3})
    window = window_of(record)
    rows = {n: slot_metrics(s["result"], s["settings"], window) for n, s in record["slots"].items()}
    assert validity(record, window, rows) == validity(record, window)
    # the request counts come from the rows, not from the calls again
    assert validity(record, window, {"A": {"requests": 5}, "B": {"requests": 3}}) == []


def test_batch_counts_towards_min_requests():
    # B's 2 calls inside carry 2 sequences each: 4 requests >= 3
    record = make_record(valid_calls(), B={"min_requests": 3, "batch_size": 2})
    assert validity(record, window_of(record)) == []


def test_definitions_state_the_validity_threshold():
    text = dict(DEFINITIONS)["Validity"]
    assert "99% of duration_s" in text


def test_weights_loaded_in_another_dtype_invalidate_the_run():
    record = make_record(valid_calls())
    record["spec"]["precision"] = "fp16"
    record["slots"]["A"]["result"]["dtype"] = "float16"
    record["slots"]["B"]["result"]["dtype"] = "float32"
    assert validity(record, window_of(record)) == [
        "slot B: weights loaded as float32, precision fp16 needs float16"
    ]


# --- open-loop slots --------------------------------------------------------------------------


def open_call(arrival_ms: int, start_ms: int, token_ms: list[int]) -> dict:
    """An open-loop call as the schedule records it: submit_ns is the arrival."""
    return {
        **call(arrival_ms, token_ms),
        "arrival_ns": ms(arrival_ms),
        "start_ns": ms(start_ms),
        "queue_ns": ms(start_ms) - ms(arrival_ms),
    }


# Slot B, released at 0, served in order with calls of 250 ms (tokens 100 and 250 ms after the
# start): a call starts at the later of its arrival and the previous call's end.
#   arrival  100: start  100 (idle),         tokens  200,  350: queue   0, TTFT 100
#   arrival  200: start  350 (after 100's),  tokens  450,  600: queue 150, TTFT 250
#   arrival  300: start  600,                tokens  700,  850: queue 300, TTFT 400
#   arrival  900: start  900 (idle again),   tokens 1000, 1150: queue   0, TTFT 100
#   arrival 1000: start 1150,                tokens 1250, 1400: queue 150, TTFT 250
#   arrival 1100: start 1400,                tokens 1500, 1650: queue 300, TTFT 400
# Stop is seen when the last call returns (1650); arrivals 1200, 1300 and 1600 are due by
# then and never started.
OPEN_CALLS = [
    open_call(100, 100, [200, 350]),
    open_call(200, 350, [450, 600]),
    open_call(300, 600, [700, 850]),
    open_call(900, 900, [1000, 1150]),
    open_call(1000, 1150, [1250, 1400]),
    open_call(1100, 1400, [1500, 1650]),
]
OPEN_ARRIVALS = [100, 200, 300, 900, 1000, 1100, 1200, 1300, 1600]
ARRIVAL = {"process": "poisson", "rate_rps": 3.0, "burstiness": 1.0, "max_backlog": 0.1}


def open_result(calls=None, arrivals=None, stop_ms=1650, release_ms=0) -> dict:
    return {
        "schedule": "open",
        "release_ns": ms(release_ms),
        "stop_ns": ms(stop_ms),
        "calls": OPEN_CALLS if calls is None else calls,
        "arrivals_ns": [ms(a) for a in (OPEN_ARRIVALS if arrivals is None else arrivals)],
    }


def open_record(*, arrival=None, sweep=None, min_requests=100) -> dict:
    """A closed-loop slot A (back to back from 0 to 1800 ms) beside the open-loop slot B."""
    record = make_record(
        {"A": closed_loop(0, 3, 300, 2), "B": []},
        duration_s=1.6,
        B={"new_tokens": 2, "min_requests": min_requests, "arrival": arrival or ARRIVAL},
        A={"new_tokens": 2},
    )
    record["slots"]["B"]["result"] = open_result()
    if sweep:
        record["spec"]["sweep"] = sweep
    return record


def test_an_open_loop_slot_is_running_until_it_saw_stop():
    record = open_record()
    # A's last token at 1800 ms, B's stop at 1650 ms
    assert window_of(record) == (ms(0), ms(1650))
    # B idle at the end: its last token at 500 ms, the stop seen at 2000 ms; A ends at 2100 ms
    idle = open_result([open_call(100, 100, [200, 500])], [100], stop_ms=2000)
    closed = released(50, closed_loop(50, 1, 1000, 2))  # tokens at 1050, 2050
    assert co_window({"A": closed, "B": idle}) == (ms(50), ms(2000))
    # ... and a closed-loop slot's end is still its last token, whatever stop_ns it carries
    closed |= {"schedule": "closed", "stop_ns": ms(5000)}
    assert co_window({"A": closed, "B": idle}) == (ms(50), ms(2000))
    assert co_window({"A": closed, "B": {**idle, "stop_ns": ms(9000)}}) == (ms(50), ms(2050))


def test_an_idle_open_loop_slot_without_calls_still_has_a_window():
    quiet = open_result([], [], stop_ms=1500)
    closed = released(0, closed_loop(0, 2, 500, 2))  # last token at 2000 ms
    assert co_window({"A": closed, "B": quiet}) == (ms(0), ms(1500))


def test_open_loop_queueing_delay_and_ttft_from_the_arrival():
    row = slot_metrics(open_result(), {**SETTINGS, "new_tokens": 2, "arrival": ARRIVAL},
                       (ms(0), ms(1650)))  # fmt: skip
    assert row["requests"] == 6
    # TTFT = first token - arrival: [100, 250, 400, 100, 250, 400]
    # sorted [100, 100, 250, 250, 400, 400]: p90 position 4.5 -> 400
    assert_stats({k: row[f"ttft_ms_{k}"] for k in metrics.STATS}, 250, 250, 400, 400, 400)
    # E2E = last token - arrival: [250, 400, 550, 250, 400, 550]
    assert row["e2e_ms_mean"] == pytest.approx(400)
    # queue = start - arrival: [0, 150, 300, 0, 150, 300]
    assert_stats({k: row[f"queue_ms_{k}"] for k in metrics.STATS}, 150, 150, 300, 300, 300)
    assert row["queue_n"] == 6
    assert row["arrival"] == "poisson 3.0 rps"
    assert row["offered_rps"] == 3.0
    assert row["arrivals"] == 9  # 100 ... 1600, all inside [0, 1650]
    assert row["backlog"] == 3  # 1200, 1300, 1600: due, not started


def test_open_loop_queue_figures_follow_the_requests_inside_the_window_and_the_batch():
    settings = {**SETTINGS, "new_tokens": 2, "batch_size": 2, "arrival": ARRIVAL}
    # window to 1200 ms: calls 0-3 inside (their last tokens by 1150), 4 and 5 not
    row = slot_metrics(open_result(), settings, (ms(0), ms(1200)))
    assert row["requests"] == 8
    # per sequence: [0, 150, 300, 0] twice; sorted [0,0,0,0,150,150,300,300]
    # p50 position 3.5 -> 75; p90 6.3 -> 300
    assert_stats({k: row[f"queue_ms_{k}"] for k in metrics.STATS}, 112.5, 75, 300, 300, 300)
    assert row["queue_n"] == 8
    # due by 1200: 100, 200, 300, 900, 1000, 1100, 1200 (7); started by then: 5
    assert (row["arrivals"], row["backlog"]) == (7, 2)


def test_arrival_labels():
    assert metrics.arrival_label(None) == ""
    assert metrics.arrival_label(ARRIVAL) == "poisson 3.0 rps"
    gamma = {"process": "gamma", "rate_rps": 1.5, "burstiness": 0.5}
    assert metrics.arrival_label(gamma) == "gamma 1.5 rps b=0.5"
    assert metrics.arrival_label({**ARRIVAL, "rate_rps": 0.1 * 3}) == "poisson 0.3 rps"


def test_a_closed_loop_slot_has_no_arrival_figures_and_the_same_others():
    settings = {"batch_size": 1, "prompt_tokens": 5}
    before = slot_metrics({"calls": WINDOW_CALLS}, settings, WINDOW)
    marked = {"calls": WINDOW_CALLS, "schedule": "closed", "stop_ns": ms(20_000)}
    assert slot_metrics(marked, settings, WINDOW) == pytest.approx(before, nan_ok=True)
    assert before["arrival"] == ""
    assert before["queue_n"] == 0
    for key in ("offered_rps", "arrivals", "backlog", *(f"queue_ms_{s}" for s in metrics.STATS)):
        assert math.isnan(before[key]), key


def test_an_open_loop_slot_that_cannot_keep_up_invalidates_the_run():
    record = open_record()
    # 3 of 9 arrivals queued > max(1, 0.1 x 9); min_requests (100) does not apply to B
    assert validity(record, window_of(record)) == [
        "slot B: 3 arrivals still queued at window end (33% of 9, limit 10%): "
        "it cannot keep up with 3.0 rps"
    ]
    assert metrics.validity_warnings(record, window_of(record)) == []


def test_a_backlog_within_its_limit_is_valid():
    # limit max(1, 0.5 x 9 = 4.5): 3 queued is fine
    record = open_record(arrival={**ARRIVAL, "max_backlog": 0.5})
    assert validity(record, window_of(record)) == []
    # one queued arrival is always allowed: the one that arrived just before the window's end
    record = open_record(arrival={**ARRIVAL, "max_backlog": 0.0})
    record["slots"]["B"]["result"]["arrivals_ns"] = [ms(a) for a in OPEN_ARRIVALS[:7]]
    assert validity(record, window_of(record)) == []


def test_a_sweep_neighbours_backlog_is_a_warning_not_a_reason():
    sweep = {"victim": "A", "neighbour": "B", "fraction": 0.4, "capacity_rps": 7.5,
             "offered_rps": 3.0}  # fmt: skip
    record = open_record(sweep=sweep)
    assert validity(record, window_of(record)) == []
    assert metrics.validity_warnings(record, window_of(record)) == [
        "slot B: 3 arrivals still queued at window end (33% of 9): the sweep's neighbour, "
        "driven to saturation at 3.0 rps on purpose; its backlog does not invalidate the run"
    ]
    # the victim gets no such pass
    record = open_record(sweep={**sweep, "victim": "B", "neighbour": "A"})
    assert validity(record, window_of(record))[0].startswith("slot B: 3 arrivals still queued")
