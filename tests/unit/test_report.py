"""The HTML report: self-contained, escaped, flags failures, shows the numbers it is given."""

from __future__ import annotations

import json
import math
import re
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import seaborn as sns

from dualbench.analysis.columns import METRICS_FILES
from dualbench.report.details import LAYOUT_ORDER
from dualbench.report.figures import (
    LATENCY_BARS,
    PALETTE,
    SLOT_COLORS,
    THROUGHPUT_BARS,
    embedded_figure,
)
from dualbench.report.format import (
    as_bool,
    clip,
    fmt_change,
    fmt_fixed,
    fmt_mib,
    fmt_pct,
    fmt_ratio,
    is_finite,
    number,
    text_or,
)
from dualbench.report.render import render_report, write_report
from dualbench.report.tables import read_csv, run_label, unique_in_order

NAN = math.nan
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")
XSS = "<script>alert(1)</script>"
DEFINITIONS = [
    ("Growth", "(V2 − V1) / V1: what the second model adds to one model's throughput."),
    ("Scaling efficiency", "V2 / (V1_A + V1_B), which is V2 / (2·V1): 100% means no interference."),
]
GOLDEN_METRICS = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "metrics"
DESCRIPTIONS = {"short": "latency floor: 32-token prompts", "long": "memory bandwidth: 2k context"}


def run_row(scenario, layout, slot, tput, *, status="ok", error="", valid=True, reasons="", **kw):
    """One runs.csv row; latency scales with throughput so alone and co-located differ."""
    failed = status != "ok"
    scale = 1.0 if failed else 100.0 / tput
    row = {
        "run_id": f"{scenario}/bf16/{layout}",
        "scenario": scenario,
        "precision": "bf16",
        "layout": layout,
        "slot": slot,
        "model": "synthetic:llama-3.2-mini",
        "backend": "cpu",
        "device": f"cpu:{0 if slot == 'A' else 4}-{3 if slot == 'A' else 7}",
        "status": status,
        "error": error,
        "valid": valid,
        "invalid_reasons": reasons,
        "prompt_tokens": 32,
        "new_tokens": 16,
        "batch_size": 1,
        "window_start_s": NAN if failed else 0.5,
        "window_end_s": NAN if failed else 5.5,
        "window_s": NAN if failed else 5.0,
        "slot_start_s": NAN if failed else (0.4 if slot == "A" else 0.5),
        "slot_end_s": NAN if failed else (5.6 if slot == "A" else 5.5),
        "span_s": NAN if failed else 5.2,
        "overlap_frac": NAN if failed else 0.96,
        "requests": NAN if failed else 40,
        "output_tokens": NAN if failed else 640,
        "throughput_tok_s": NAN if failed else tput,
        "prefill_tok_s": NAN if failed else 2 * tput,
        "request_rate_rps": NAN if failed else tput / 16,
    }
    for i, m in enumerate(LATENCIES):
        for j, s in enumerate(STATS):
            row[f"{m}_ms_{s}"] = NAN if failed else (10.0 * (i + 1) + j) * scale
    row |= {
        "peak_mem_bytes": NAN if failed else 512 * 2**20,
        "mem_reserved_peak_bytes": NAN,
        "mem_source": "" if failed else "ru_maxrss",
        "load_s": 1.25,
        "warmup_s": 0.5,
    }
    row.update(kw)
    return row


def make_runs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            run_row("short", "alone_A", "A", 123.4),
            run_row("short", "alone_B", "B", 118.0),
            run_row("short", "colocated", "A", 100.3),
            run_row("short", "colocated", "B", 99.2),
            run_row("long", "alone_A", "A", 50.0),
            run_row(
                "long",
                "alone_B",
                "B",
                NAN,
                status="oom",
                error="NPU out of memory: tried to allocate 2.00 GiB",
                valid=False,
                reasons="status oom: NPU out of memory",
            ),
            run_row("long", "colocated", "A", 30.0, valid=False, reasons="slots did not overlap"),
            run_row("long", "colocated", "B", 28.0, valid=False, reasons="slots did not overlap"),
        ]
    )


def make_scaling() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "scenario": "short",
                "precision": "bf16",
                "v1_A": 123.4,
                "v1_B": 118.0,
                "v1": 120.7,
                "v2": 199.5,
                "growth": 0.6529,
                "scaling_efficiency": 0.8264,
                "slowdown_A": 1.2303,
                "slowdown_B": 1.1895,
                "valid": True,
                "note": "",
            },
            {
                "scenario": "long",
                "precision": "bf16",
                "v1_A": 50.0,
                "v1_B": NAN,
                "v1": NAN,
                "v2": 58.0,
                "growth": NAN,
                "scaling_efficiency": NAN,
                "slowdown_A": 50.0 / 30.0,
                "slowdown_B": NAN,
                "valid": False,
                "note": "depends on an invalid or failed run",
            },
        ]
    )


def make_requests(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in runs.to_dict("records"):
        if r["status"] != "ok":
            continue
        for call in range(6):
            rows.append(
                {
                    "run_id": r["run_id"],
                    "scenario": r["scenario"],
                    "precision": r["precision"],
                    "layout": r["layout"],
                    "slot": r["slot"],
                    "call": call,
                    "index": 0,
                    "in_window": call > 0,
                    "submit_s": 0.5 + call * 0.8,
                    "ttft_ms": r["ttft_ms_p50"] * (0.9 + 0.05 * call),
                    "tpot_ms": r["tpot_ms_p50"],
                    "e2e_ms": r["e2e_ms_p50"],
                    "itl_ms_mean": r["itl_ms_mean"],
                    "new_tokens": 16,
                }
            )
    return pd.DataFrame(rows)


ENVIRONMENT = {
    "dualbench": "0.1.0",
    "python": "3.11.7",
    "packages": {"torch": "2.13.0+cpu", "transformers": "4.56.0"},
    "host": {"name": "bench-01", "cpus": 16},
    "platform": "Linux-6.1-x86_64",
    "backend": {"kind": "cpu", "slots": ["cpu:0-3", "cpu:4-7"]},
    "config": {"duration_s": 5, "scenarios": {"short": {"prompt_tokens": 32}}},
}


def render(runs=None, scaling=None, requests=None, title="dualbench report", **kw) -> str:
    runs = make_runs() if runs is None else runs
    return render_report(
        runs=runs,
        scaling=make_scaling() if scaling is None else scaling,
        requests=make_requests(runs) if requests is None else requests,
        environment=kw.get("environment", ENVIRONMENT),
        title=title,
        scenario_descriptions=DESCRIPTIONS,
        definitions=DEFINITIONS,
        hardware_notes=kw.get("hardware_notes"),
    )


@pytest.fixture(scope="module")
def html() -> str:
    return render(title=f"Bench {XSS}")


def section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    nxt = html.find("<section", start)
    return html[start : nxt if nxt != -1 else len(html)]


def test_hardware_notes_and_run_warnings_come_first_once_each():
    runs = make_runs()
    runs["warnings"] = ""
    runs.loc[runs.layout == "colocated", "warnings"] = "bf16 is emulated on this CPU; <b>x</b>"
    notes = ["native16 = fp32 on this cpu: this CPU has no native bf16"]
    html = render(runs=runs, hardware_notes=notes)
    box = html[html.index('id="hardware"') : html.index('id="headline"')]
    assert notes[0] in box
    assert box.count("bf16 is emulated on this CPU") == 1  # one line for all its runs
    assert "&lt;b&gt;x&lt;/b&gt;" in box  # escaped like every text from the data
    assert 'id="hardware"' not in render(runs=make_runs())  # nothing to say, no box


def test_one_self_contained_document(html):
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.count("<html") == 1 and html.rstrip().endswith("</html>")
    lowered = html.lower()
    for forbidden in ('src="http', "src='http", 'href="http', "href='http", "<link", "@import"):
        assert forbidden not in lowered
    assert "url(" not in lowered
    # No script at all: the report is static, and the escaped title must not become one.
    assert "<script" not in lowered
    # Every src is an embedded figure.
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_figures_are_embedded(html):
    assert html.count('src="data:image/png;base64,') == 5
    assert "could not be drawn" not in html


def test_title_is_escaped(html):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_message_is_escaped():
    runs = make_runs()
    runs.loc[5, "error"] = f"boom {XSS}"
    out = render(runs=runs)
    assert "<script" not in out.lower()
    assert "boom &lt;script&gt;" in out


def test_failed_and_invalid_runs_are_flagged(html):
    warning = html[html.index('id="warnings"') : html.index('id="headline"')]
    assert "1 run slot failed" in warning and "2 more invalid" in warning
    assert "long/bf16/alone_B slot B" in warning and "oom" in warning
    assert "NPU out of memory: tried to allocate 2.00 GiB" in warning
    assert "slots did not overlap" in warning
    failures = section(html, "failures")
    assert "oom" in failures and "NPU out of memory: tried to allocate 2.00 GiB" in failures
    assert failures.count("slots did not overlap") == 2
    assert "depends on an invalid or failed run" in failures


def test_headline_numbers_are_formatted(html):
    headline = section(html, "headline")
    assert "123.4" in headline  # A alone, tok/s with one decimal
    assert "199.5" in headline  # V2
    assert "+65%" in headline  # growth 0.6529
    assert "83%" in headline  # efficiency 0.8264
    assert "1.23×" in headline and "1.19×" in headline
    assert (
        "short/bf16: a second model adds +65% total throughput (V1 120.7 → V2 199.5 tok/s, "
        "efficiency 83%); A slows 1.23×, B 1.19×." in headline
    )
    assert "long/bf16: no scaling result (depends on an invalid or failed run)." in headline
    # TTFT p50 alone (11.0 * 100 / 123.4) -> co-located (11.0 * 100 / 100.3).
    assert "TTFT p50 A 8.9 → 11.0 ms" in headline
    # Missing numbers read as a dash, never "nan".
    assert "–" in headline and "nan" not in headline.lower()


def test_definitions_and_descriptions_verbatim(html):
    # Escaped for HTML (the apostrophe), so compare what a reader sees.
    defs = unescape(section(html, "definitions"))
    for name, text in DEFINITIONS:
        assert f"<dt>{name}</dt><dd>{text}</dd>" in defs
    for text in DESCRIPTIONS.values():
        assert text in html


def test_environment_flattened_and_config_pretty(html):
    env = section(html, "environment")
    assert "packages.torch" in env and "2.13.0+cpu" in env
    assert "host.name" in env and "bench-01" in env
    assert "cpu:0-3, cpu:4-7" in env
    assert "<pre>" in env and "&#34;duration_s&#34;: 5" in env


def test_detail_tables_per_scenario(html):
    details = section(html, "details")
    for name in ("short", "long"):
        assert f'id="scenario-{name}"' in details
    for label in ("TTFT (ms)", "TPOT (ms)", "ITL (ms)", "E2E (ms)", "Memory (MiB)", "p99"):
        assert label in details
    assert "512.0" in details  # peak_mem_bytes in MiB
    assert "1.25" in details  # load_s


@pytest.mark.parametrize(
    "case",
    ["single_scenario", "alone_only", "colocated_only", "all_failed", "no_runs"],
)
def test_degenerate_inputs_render(case):
    runs, scaling = make_runs(), make_scaling()
    if case == "single_scenario":
        runs, scaling = runs[runs.scenario == "short"], scaling[scaling.scenario == "short"]
    elif case == "alone_only":
        runs, scaling = runs[runs.layout != "colocated"], scaling.iloc[0:0]
    elif case == "colocated_only":
        runs, scaling = runs[runs.layout == "colocated"], scaling.iloc[0:0]
    elif case == "all_failed":
        runs = pd.DataFrame(
            [
                run_row("short", lay, s, NAN, status="error", error="worker crashed", valid=False)
                for lay, s in (("alone_A", "A"), ("alone_B", "B"), ("colocated", "A"))
            ]
        )
        scaling = scaling.iloc[0:0]
    elif case == "no_runs":
        runs, scaling = runs.iloc[0:0], scaling.iloc[0:0]
    out = render(runs=runs, scaling=scaling, requests=pd.DataFrame())
    assert out.rstrip().endswith("</html>")
    assert "could not be drawn" not in out
    if case == "alone_only":
        assert "No co-located runs." in out
        assert "no scaling yet" in out
    if case == "all_failed":
        assert "No run produced a throughput figure." in out
        assert "worker crashed" in section(out, "failures")


def test_formatters():
    assert fmt_fixed(123.44) == "123.4"
    assert fmt_fixed(NAN) == "–"
    assert fmt_fixed(None) == "–"
    assert fmt_pct(0.617, signed=True) == "+62%"
    assert fmt_pct(0.042, signed=True) == "+4.2%"
    assert fmt_pct(-0.12, signed=True) == "-12%"
    assert fmt_pct(0.81) == "81%"
    assert fmt_ratio(1.2345) == "1.23×"
    assert fmt_mib(3 * 2**20) == "3.0"


def test_write_report_round_trip(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    runs = make_runs()
    runs.to_csv(metrics / "runs.csv", index=False)
    make_scaling().to_csv(metrics / "scaling.csv", index=False)
    make_requests(runs).to_csv(metrics / "requests.csv", index=False)
    (metrics / "environment.json").write_text(json.dumps(ENVIRONMENT))
    out = tmp_path / "report" / "nested" / "report.html"

    write_report(metrics, out, "Round trip", DESCRIPTIONS, DEFINITIONS)

    text = out.read_text(encoding="utf-8")
    assert text == render(title="Round trip")  # CSV round trip changes nothing shown
    assert "123.4" in text and "+65%" in text
    assert text.count("data:image/png;base64,") == 5


def test_readers_tolerate_missing_values():
    assert number("2.5") == 2.5 and number(True) == 1.0
    assert math.isnan(number(None)) and math.isnan(number("")) and math.isnan(number("x"))
    assert is_finite(3) and not is_finite(NAN) and not is_finite(math.inf)
    assert as_bool("True") and as_bool(" yes ") and as_bool(1)
    assert not as_bool("False") and not as_bool(NAN) and not as_bool(None)
    assert text_or(NAN) == "–" and text_or("") == "–" and text_or(None, "") == ""
    assert text_or("RAPL") == "RAPL"


def test_change_and_clip():
    assert fmt_change(0.38) == "0.38× (-62%)"
    assert fmt_change(1.5) == "1.50× (+50%)"
    assert fmt_change(NAN) == "–"
    assert clip("short", 10) == "short"
    assert clip("a long message", 8) == "a long…"


def test_labels_and_order():
    assert run_label("alone_A", "A") == "A alone"
    assert run_label("colocated", "B") == "B co-located"
    assert unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_palette_and_layout_order_from_the_slot_names():
    # Built from SLOT_NAMES; for slots A and B they are what the report has always drawn.
    paired = sns.color_palette("Paired")
    expected = {
        "A alone": paired[0],
        "A co-located": paired[1],
        "B alone": paired[6],
        "B co-located": paired[7],
        "A+B co-located": "#555555",
    }
    assert expected == PALETTE
    assert {"A": paired[1], "B": paired[7]} == SLOT_COLORS
    assert THROUGHPUT_BARS == [
        "A alone",
        "B alone",
        "A co-located",
        "B co-located",
        "A+B co-located",
    ]
    assert LATENCY_BARS == ["A alone", "A co-located", "B alone", "B co-located"]
    assert LAYOUT_ORDER == {"alone_A": 0, "alone_B": 1, "colocated": 2}


def test_a_figure_that_fails_becomes_a_note():
    def boom():
        raise ValueError("no axis")

    failed = embedded_figure("Broken", "caption", boom)
    assert failed["uri"] is None
    assert failed["note"] == "This figure could not be drawn: ValueError: no axis"
    assert embedded_figure("Empty", "caption", lambda: "Nothing to draw.")["note"] == (
        "Nothing to draw."
    )


def test_read_csv_of_an_empty_file(tmp_path):
    (tmp_path / "requests.csv").write_text("")
    assert read_csv(tmp_path / "requests.csv").empty


def test_write_report_reads_the_optional_tables_when_present(tmp_path):
    with_all = tmp_path / "all.html"
    write_report(GOLDEN_METRICS, with_all, "golden", {}, DEFINITIONS)
    text = with_all.read_text(encoding="utf-8")
    assert 'id="int4"' in text and 'id="telemetry"' in text

    core = tmp_path / "core"
    core.mkdir()
    for table in ("runs", "scaling", "requests", "environment"):
        (core / METRICS_FILES[table]).write_bytes(
            (GOLDEN_METRICS / METRICS_FILES[table]).read_bytes()
        )
    write_report(core, tmp_path / "core.html", "golden", {}, DEFINITIONS)
    text = (tmp_path / "core.html").read_text(encoding="utf-8")
    assert 'id="int4"' not in text and 'id="telemetry"' not in text
    assert 'id="headline"' in text
