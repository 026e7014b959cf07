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
from matplotlib.container import ErrorbarContainer

from dualbench.analysis.columns import METRICS_FILES
from dualbench.report.bars import (
    has_whiskers,
    latency_data,
    scaling_data,
    throughput_data,
    throughput_figure,
)
from dualbench.report.estimates import Estimates
from dualbench.report.figures import (
    embedded_figure,
    latency_bars,
    palette,
    slot_colors,
    throughput_bars,
)
from dualbench.report.format import (
    as_bool,
    clip,
    fmt_change,
    fmt_estimate,
    fmt_fixed,
    fmt_mib,
    fmt_pct,
    fmt_ratio,
    is_finite,
    number,
    text_or,
)
from dualbench.report.int4 import int4_section
from dualbench.report.layouts import run_label, sort_layouts
from dualbench.report.render import render_report, write_report
from dualbench.report.tables import (
    prepare_answers,
    prepare_interference,
    prepare_runs,
    prepare_scaling,
    read_csv,
    unique_in_order,
)

NAN = math.nan
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")
XSS = "<script>alert(1)</script>"
DEFINITIONS = [
    ("Growth", "(V2 − V1) / V1: what the second model adds to one model's throughput."),
    ("Scaling efficiency", "V2 / (V1_A + V1_B), which is V2 / (2·V1): 100% means no interference."),
]
# The Figures section's: throughput, latency, scaling and interference, scaling curve,
# interference matrix, overlap timeline, TTFT distribution (the curve and the matrix new with
# any number of models).
FIGURES = 7
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


def scaling_row(scenario, v1_a, v1_b, v_total, valid=True, note="", **kw) -> dict:
    """One scaling.csv row (long: one per block and group layout) of the pair A+B
    co-located."""
    v1_sum = v1_a + v1_b
    return {
        "scenario": scenario,
        "precision": "bf16",
        "layout": "colocated",
        "schedule": "free",
        "models": "A+B",
        "k": 2,
        "v1_sum": v1_sum,
        "v1_mean": v1_sum / 2,
        "v_total": v_total,
        # (v_total / v1_mean - 1) / (k - 1)
        "growth_per_model": v_total / (v1_sum / 2) - 1,
        "scaling_efficiency": v_total / v1_sum,
        "valid": valid,
        "note": note,
    } | kw


def make_scaling() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # growth 0.6529, efficiency 0.8264, as the wide table of two models had them
            scaling_row("short", 123.4, 118.0, 199.5),
            scaling_row(
                "long", 50.0, NAN, 58.0, valid=False, note="depends on an invalid or failed run"
            ),
        ]
    )


def interference_row(scenario, victim, slowdown, valid=True, layout="colocated", **kw) -> dict:
    neighbours = "+".join(m for m in ("A", "B") if m != victim)
    return {
        "scenario": scenario,
        "precision": "bf16",
        "layout": layout,
        "schedule": "free",
        "victim": victim,
        "neighbours": neighbours,
        "slowdown_throughput": slowdown,
        "slowdown_ttft_p50": NAN,
        "slowdown_tpot_p50": NAN,
        "slowdown_e2e_p50": NAN,
        "valid": valid,
    } | kw


def make_interference() -> pd.DataFrame:
    return pd.DataFrame(
        [
            interference_row("short", "A", 123.4 / 100.3),
            interference_row("short", "B", 118.0 / 99.2),
            interference_row("long", "A", 50.0 / 30.0, valid=False),
            interference_row("long", "B", NAN, valid=False),
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
        interference_table=kw.get("interference", make_interference()),
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


def only_our_script(html: str) -> bool:
    """The page's one script is the template's inline one: no src, and it fetches nothing."""
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    fetches = r"https?:|//|fetch\(|XMLHttpRequest|import\(|\.src\s*="
    code = "\n".join(re.sub(r"/\*.*?\*/", "", body, flags=re.S) for _, body in scripts)
    code = "\n".join(line.split("// ")[0] for line in code.splitlines())
    return len(scripts) == 1 and not scripts[0][0].strip() and not re.search(fetches, code)


def scenario_figures(html: str) -> int:
    """The verdicts' figures: one throughput figure per scenario's block."""
    return len(re.findall(r'<article class="[^"]*\bverdict-card\b', html))


def test_one_self_contained_document(html):
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.count("<html") == 1 and html.rstrip().endswith("</html>")
    lowered = html.lower()
    for forbidden in ('src="http', "src='http", 'href="http', "href='http", "<link", "@import"):
        assert forbidden not in lowered
    assert "url(" not in lowered
    # One inline script of ours (sorting, filtering); the escaped title must not become one.
    assert only_our_script(html)
    # Every src is an embedded figure.
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_figures_are_embedded(html):
    assert html.count('src="data:image/png;base64,') == FIGURES + scenario_figures(html) > FIGURES
    assert "could not be drawn" not in html


def test_title_is_escaped(html):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_message_is_escaped():
    runs = make_runs()
    runs.loc[5, "error"] = f"boom {XSS}"
    out = render(runs=runs)
    assert only_our_script(out)
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
    make_interference().to_csv(metrics / "interference.csv", index=False)
    make_requests(runs).to_csv(metrics / "requests.csv", index=False)
    (metrics / "environment.json").write_text(json.dumps(ENVIRONMENT))
    out = tmp_path / "report" / "nested" / "report.html"

    write_report(metrics, out, "Round trip", DESCRIPTIONS, DEFINITIONS)

    text = out.read_text(encoding="utf-8")
    assert text == render(title="Round trip")  # CSV round trip changes nothing shown
    assert "123.4" in text and "+65%" in text
    assert text.count("data:image/png;base64,") == FIGURES + scenario_figures(text)


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
    # Built from the data's model names; for A and B they are what the report has always drawn.
    paired = sns.color_palette("Paired")
    expected = {
        "A alone": paired[0],
        "A co-located": paired[1],
        "B alone": paired[6],
        "B co-located": paired[7],
        "A+B co-located": "#555555",
    }
    assert expected == palette(["A", "B"])
    assert {"A": paired[1], "B": paired[7]} == slot_colors(["A", "B"])
    assert throughput_bars(["A", "B"]) == [
        "A alone",
        "B alone",
        "A co-located",
        "B co-located",
        "A+B co-located",
    ]
    assert latency_bars(["A", "B"]) == ["A alone", "A co-located", "B alone", "B co-located"]
    assert sort_layouts(["colocated", "alone_B", "alone_A"]) == ["alone_A", "alone_B", "colocated"]


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


# ---------------------------------------------------------------------------------------------
# Repeat blocks: answers.csv's estimates with intervals and verdicts, blocks.csv's drift guard

DRIFT_NOTE = "alone_A throughput 15% below the other blocks' median (tolerance 10%)"
SLOWDOWN_EFFECT = "1.12× (95% CI 1.08–1.16)"
INCONCLUSIVE = "inconclusive at n = 3 rounds: run more rounds"
EQUIVALENT = "no detectable interference (±3%)"


def block_runs(blocks: int) -> pd.DataFrame:
    """runs.csv of scenario "short" over ``blocks`` blocks; every p90/p99 over 9 values."""
    rows = []
    for r in range(1, blocks + 1):
        for pos, (layout, slot, tput) in enumerate(
            [
                ("alone_A", "A", 120.0),
                ("alone_B", "B", 118.0),
                ("colocated", "A", 100.0),
                ("colocated", "B", 99.0),
            ]  # fmt: skip
        ):
            row = run_row("short", layout, slot, tput + r)
            row |= {
                "run_id": f"short/bf16/r{r}/{layout}",
                "repeat": r,
                "position": min(pos, 2) + 1,
                "ttft_n": 9,
                "tpot_n": 9,
                "itl_n": 63,
                "e2e_n": 9,
                "percentile_note": "ttft p99: max, n = 9",
                "loadavg_1m": 0.5 + r / 10,
                "cpu_mhz": 2600.0,
            }
            rows.append(row)
    return pd.DataFrame(rows)


def block_scaling(blocks: int) -> pd.DataFrame:
    row = make_scaling().iloc[0].to_dict()
    return pd.DataFrame([{**row, "repeat": r} for r in range(1, blocks + 1)])


def block_interference(blocks: int) -> pd.DataFrame:
    rows = make_interference()
    rows = rows[rows["scenario"] == "short"].to_dict("records")
    return pd.DataFrame([{**row, "repeat": r} for r in range(1, blocks + 1) for row in rows])


def answer(name, subject, unit, estimate, lo, hi, n, kind="", verdict=""):
    if n < 2:
        lo = hi = NAN
        if kind:
            kind, verdict = "one repeat", "one round: no interval"
    return {
        "scenario": "short",
        "precision": "bf16",
        "answer": name,
        "subject": subject,
        "unit": unit,
        "estimate": estimate,
        "lo": lo,
        "hi": hi,
        "n": n,
        "confidence": 0.95,
        "method": "paired log-ratio t" if kind else "log-value t",
        "verdict_kind": kind,
        "verdict": verdict,
    }


def block_answers(n: int) -> pd.DataFrame:
    """answers.csv of "short" over ``n`` blocks: two models A and B, alone and co-located.
    (Before any number of models: v2 / growth / scaling_efficiency of subject "all" and
    slowdowns of subject "<slot>"; now v_total / growth_per_model / scaling_efficiency of
    "colocated" and slowdowns of "colocated/<slot>", the same figures.)"""
    rows = [
        answer("v1", "A", "tok/s", 121.0, 118.0, 124.0, n),
        answer("v1", "B", "tok/s", 119.0, 117.0, 121.0, n),
        answer("v_total", "colocated", "tok/s", 201.0, 190.0, 212.0, n),
        answer("growth_per_model", "colocated", "fraction", 0.6667, 0.57, 0.76, n),
        answer(
            "scaling_efficiency",
            "colocated",
            "ratio",
            0.8333,
            0.70,
            1.02,
            n,
            "inconclusive",
            INCONCLUSIVE,
        ),  # fmt: skip
    ]
    for slot, est, lo, hi, kind, text in (
        ("A", 1.12, 1.08, 1.16, "effect", SLOWDOWN_EFFECT),
        ("B", 1.01, 0.99, 1.02, "equivalent", EQUIVALENT),
    ):
        subject = f"colocated/{slot}"
        rows.append(answer("slowdown_throughput", subject, "ratio", est, lo, hi, n, kind, text))
        for m in ("ttft", "tpot", "e2e"):
            rows.append(answer(f"slowdown_{m}_p50", subject, "ratio", 1.1, 0.9, 1.3, n,
                               "inconclusive", INCONCLUSIVE))  # fmt: skip
    for layout, slot, tput in (
        ("alone_A", "A", 121.0),
        ("alone_B", "B", 119.0),
        ("colocated", "A", 101.0),
        ("colocated", "B", 100.0),
    ):
        subject = f"{layout}/{slot}"
        rows.append(answer("throughput", subject, "tok/s", tput, tput - 5, tput + 5, n))
        for m, v in (("ttft", 10.0), ("tpot", 20.0), ("e2e", 300.0)):
            rows.append(answer(f"{m}_p50", subject, "ms", v, v - 1, v + 1, n))
    return pd.DataFrame(rows)


def block_table(blocks: int, drift_block: int | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "scenario": "short",
                "precision": "bf16",
                "repeat": r,
                "order": "alone_A → alone_B → colocated",
                "loadavg_1m": 0.5 + r / 10,
                "cpu_mhz": 2600.0,
                "device_temp_c": 41.5,
                "drift": r == drift_block,
                "drift_note": DRIFT_NOTE if r == drift_block else "",
            }
            for r in range(1, blocks + 1)
        ]
    )


def write_metrics(path: Path, blocks: int, drift_block=None, optional=True) -> Path:
    """A metrics directory of ``blocks`` blocks; ``optional``: with answers.csv and
    blocks.csv."""
    path.mkdir(parents=True, exist_ok=True)
    runs = block_runs(blocks)
    runs.to_csv(path / METRICS_FILES["runs"], index=False)
    block_scaling(blocks).to_csv(path / METRICS_FILES["scaling"], index=False)
    block_interference(blocks).to_csv(path / METRICS_FILES["interference"], index=False)
    make_requests(runs).to_csv(path / METRICS_FILES["requests"], index=False)
    (path / METRICS_FILES["environment"]).write_text(json.dumps(ENVIRONMENT))
    if optional:
        block_answers(blocks).to_csv(path / METRICS_FILES["answers"], index=False)
        block_table(blocks, drift_block).to_csv(path / METRICS_FILES["blocks"], index=False)
    return path


def report_of(metrics: Path) -> str:
    out = metrics.parent / "report.html"
    write_report(metrics, out, "blocks", DESCRIPTIONS, DEFINITIONS)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def three_blocks(tmp_path_factory) -> str:
    return report_of(write_metrics(tmp_path_factory.mktemp("three") / "metrics", 3, 2))


def test_estimate_formats():
    assert fmt_estimate(1.0213, 0.85, 1.21, "ratio") == "1.02× (0.85–1.21)"
    assert fmt_estimate(0.985, 0.8175, 1.1678, "growth") == "+98% (+82…+117%)"
    assert fmt_estimate(0.9925, 0.9087, 1.0839, "pct") == "99% (91–108%)"
    assert fmt_estimate(127.1, 111.3, 145.13, "tok") == "127.1 (111.3–145.1)"
    assert fmt_estimate(1.5, NAN, NAN, "ratio") == "1.50×"  # one block: no interval
    assert fmt_estimate(1.5, 1.2, 1.7, "ratio", "n = 2") == "1.50× (1.20–1.70, n = 2)"
    assert fmt_estimate(NAN, 1.0, 2.0, "ratio") == "–"


def test_headline_shows_intervals_and_verdicts(three_blocks):
    headline = section(three_blocks, "headline")
    text = unescape(headline)
    assert "+67% (+57…+76%)" in text  # growth with its interval
    assert "201.0 (190.0–212.0)" in text  # V2
    assert "83% (70–102%)" in text  # scaling efficiency
    assert "121.0 (116.0–126.0)" in text  # A alone throughput
    # Each interference answer's verdict in words, coloured by its kind.
    assert f'<span class="verdict v-inconclusive">{INCONCLUSIVE}</span>' in text
    assert f'<span class="verdict v-effect">{SLOWDOWN_EFFECT}</span>' in text
    assert f'<span class="verdict v-equivalent">{EQUIVALENT}</span>' in text
    assert "3 blocks" in text and "one repeat" not in text
    # The sentence keeps its content, with intervals and verdicts.
    sentence = re.sub(r"<[^>]+>", "", text[text.index("short/bf16: a second model") :])
    sentence = sentence[: sentence.index("\n")]
    assert sentence.startswith(
        "short/bf16: a second model adds +67% (+57…+76%) total throughput "
        "(V1 A 121.0 (118.0–124.0), B 119.0 (117.0–121.0) → V2 201.0 (190.0–212.0) tok/s); "
        f"scaling efficiency 83% (70–102%) — {INCONCLUSIVE}; A slows {SLOWDOWN_EFFECT}, "
        f"B 1.01× (0.99–1.02) — {EQUIVALENT}."
    )
    assert f"TTFT p50 A 10.0 (9.0–11.0) → 10.0 (9.0–11.0) ms — {INCONCLUSIVE}" in sentence
    # The block-wise scaling rows are not what the headline shows.
    assert "199.5" not in headline


def test_one_block_says_once_that_it_has_no_interval(tmp_path):
    html = report_of(write_metrics(tmp_path / "metrics", 1))
    text = unescape(section(html, "headline"))
    table = text[text.index("<table") : text.index("</table>")]
    assert table.count("one round: no interval") == 1  # once per scenario row
    assert "short/bf16 (" in text and "one round: no interval</span>): a second" in text
    sentence = text[text.index("short/bf16 (") : text.index("</li>")]
    assert sentence.count("one round: no interval") == 1
    assert "+67% total throughput" in text and "(+57…+76%)" not in text
    assert "1.12×" in text and SLOWDOWN_EFFECT not in text  # no interval, no verdict


def test_percentiles_over_too_few_values_read_max(three_blocks):
    details = section(three_blocks, "details")
    assert "max, n = 9" in details  # ttft/tpot/e2e p90 and p99 over 9 values
    assert "max, n = 63" in details  # itl p99
    assert details.count("max, n = 63") == 12  # every run's ITL p99, only p99 (63 >= 10)
    p50 = float(block_runs(3).iloc[0]["ttft_ms_p50"])
    assert fmt_fixed(p50) in details  # p50 still a number


def test_detail_columns_name_their_block(three_blocks):
    details = section(three_blocks, "details")
    for r in (1, 2, 3):
        assert f"A alone · r{r}" in details and f"B co-located · r{r}" in details


def test_blocks_table_and_drift_listed_as_a_problem(three_blocks):
    blocks = unescape(section(three_blocks, "blocks"))
    assert "alone_A → alone_B → colocated" in blocks and "r3" in blocks
    assert "41.5" in blocks and "2,600" in blocks and "0.70" in blocks
    assert DRIFT_NOTE in blocks
    warning = unescape(three_blocks[three_blocks.index('id="warnings"') :])
    assert "1 block drifted" in warning and DRIFT_NOTE in warning
    assert DRIFT_NOTE in unescape(section(three_blocks, "failures"))
    assert "block r2 drifted" in unescape(section(three_blocks, "headline"))


def test_metrics_without_answers_or_blocks_still_render(tmp_path):
    html = report_of(write_metrics(tmp_path / "metrics", 1, optional=False))
    headline = unescape(section(html, "headline"))
    assert "short/bf16: a second model adds +65% total throughput" in headline  # scaling.csv
    assert "one repeat" not in headline and 'id="blocks"' not in html
    assert html.count("data:image/png;base64,") == FIGURES + scenario_figures(html)
    assert "could not be drawn" not in html


def test_block_report_is_self_contained(three_blocks):
    assert three_blocks.count('src="data:image/png;base64,') == FIGURES + 1  # + short's verdict
    assert "could not be drawn" not in three_blocks
    refs = re.findall(r'(?:src|href)="([^"]*)"', three_blocks)
    assert refs and not [r for r in refs if r.lower().startswith(("http", "//"))]
    assert only_our_script(three_blocks)
    assert "nan" not in section(three_blocks, "headline").lower()


def test_definitions_print_in_full(three_blocks):
    defs = unescape(section(three_blocks, "definitions"))
    for name, text in DEFINITIONS:
        assert f"<dt>{name}</dt><dd>{text}</dd>" in defs


def test_bar_figures_draw_the_estimates_with_interval_whiskers():
    runs = prepare_runs(block_runs(3))
    est = Estimates(prepare_answers(block_answers(3)))
    data = throughput_data(runs, prepare_scaling(block_scaling(3)), est, ["A", "B"])
    pair = data[data["bar"] == "A+B co-located"].iloc[0]
    assert (pair["value"], pair["lo"], pair["hi"]) == (201.0, 190.0, 212.0)  # V2's answer
    assert len(data) == 5 and has_whiskers(data)
    fig = throughput_figure(data, ["short"], ["bf16"], set(), ["A", "B"])
    whiskers = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(whiskers) == 5
    scale = scaling_data(prepare_scaling(block_scaling(3)),
                         prepare_interference(block_interference(3)), [("short", "bf16")], set(),
                         est, True, ["A", "B"])  # fmt: skip
    eff = scale[scale["bar"] == "efficiency"].iloc[0]
    assert (eff["value"], eff["lo"], eff["hi"]) == pytest.approx((83.33, 70.0, 102.0))
    latency = latency_data(runs, est, ["A", "B"])
    assert has_whiskers(latency) and set(latency["value"]) == {10.0, 20.0}
    # One block: no interval, the latency whisker reaches the run's p90 instead.
    run = block_runs(1).iloc[0]  # A alone
    answers_one = block_answers(1)
    which = (answers_one["answer"] == "ttft_p50") & (answers_one["subject"] == "alone_A/A")
    answers_one.loc[which, "estimate"] = run["ttft_ms_p50"]
    one = Estimates(prepare_answers(answers_one))
    latency = latency_data(prepare_runs(block_runs(1)), one, ["A", "B"])
    ttft = latency[latency["bar"] == "ttft|A alone"].iloc[0]
    assert ttft["value"] == run["ttft_ms_p50"]
    assert math.isnan(ttft["lo"]) and ttft["hi"] == run["ttft_ms_p90"]
    assert not has_whiskers(
        throughput_data(runs, prepare_scaling(block_scaling(1)), one, ["A", "B"])
    )


def test_int4_ratios_from_answers_with_intervals():
    baseline = block_answers(3)
    int4 = baseline.assign(precision="int4")
    ratio = answer("int4_throughput_tok_s_ratio", "alone_A/A", "ratio to bf16", 1.12, 1.05,
                   1.21, 3) | {"precision": "int4"}  # fmt: skip
    answers_table = pd.concat([baseline, int4, pd.DataFrame([ratio])], ignore_index=True)
    int4_rows = pd.DataFrame(
        [
            {
                "scenario": "short",
                "repeat": r,
                "layout": "alone_A",
                "slot": "A",
                "baseline": "bf16",
                "throughput_tok_s_ratio": 1.1,
                "valid": True,
            }
            for r in (1, 2, 3)
        ]  # fmt: skip
    )
    section_ = int4_section(None, int4_rows, Estimates(prepare_answers(answers_table)), ["A", "B"])
    assert section_["answered"]
    (row,) = section_["scenarios"]
    assert row["throughput_ratio"] == "1.12× (1.05–1.21)"
    assert row["throughput"] == "121.0 → 121.0" and row["blocks"] == "3 blocks"
