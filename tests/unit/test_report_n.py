"""The report for any number of models, on hand-made tables that follow dualbench.analysis'
schemas: one, two and three models (their names taken from the data), the scaling curve and
the interference matrix with their values, and the Schedules section with its comparisons and
the single-thread timeline, present only where lockstep or single-thread layouts ran."""

from __future__ import annotations

import math
import re
from html import unescape

import pandas as pd
import pytest
import seaborn as sns

from dualbench.config.vocabulary import alone_layout
from dualbench.report.estimates import Estimates
from dualbench.report.figures import (
    palette,
    slot_colors,
    smallest_label_px,
    throughput_bars,
)
from dualbench.report.layouts import group_label, run_label, slot_names
from dualbench.report.render import render_report
from dualbench.report.scaling import curve_data, curve_figure, matrix_data, matrix_figure
from dualbench.report.schedules import call_bars, pay_sentence, timeline_figure
from dualbench.report.tables import (
    prepare_answers,
    prepare_interference,
    prepare_requests,
    prepare_runs,
    prepare_scaling,
)
from tests.unit.test_report import DEFINITIONS, ENVIRONMENT, answer, run_row, section

NAN = math.nan
KEY = ("short", "bf16")
THREE = ("Big", "Mid", "Tiny")  # not A and B: nothing may assume those names
BASE = {"A": 120.0, "B": 118.0, "Big": 40.0, "Mid": 80.0, "Tiny": 160.0}
# The throughput a model keeps in a layout of k models (free co-location).
SHARE = {2: 0.8, 3: 0.6}


def effect(slow: float) -> str:
    """A slowdown's verdict in words, as dualbench.analysis.answers writes an effect."""
    return f"{slow:.2f}× (95% CI {0.98 * slow:.2f}–{1.02 * slow:.2f})"


PAID = "1.10× (95% CI 1.05–1.15)"


def members_of(layout: str, names) -> list[str]:
    if layout.startswith("alone_"):
        return [layout.removeprefix("alone_")]
    _, _, subset = layout.partition(":")
    return subset.split("+") if subset else list(names)


def tput(layout: str, slot: str, k: int, block: int) -> float:
    share = 1.0 if k == 1 else SHARE[k]
    if layout.startswith("lockstep"):
        share = 0.9 * share
    if layout.startswith("single_thread"):
        share = 0.5
    return BASE[slot] * share * (1 + 0.01 * block)


def make_runs(names, layouts, blocks=2) -> pd.DataFrame:
    rows = []
    for r in range(1, blocks + 1):
        for layout in layouts:
            group = members_of(layout, names)
            for slot in group:
                row = run_row("short", layout, slot, tput(layout, slot, len(group), r))
                row |= {
                    "run_id": f"short/bf16/r{r}/{layout}",
                    "repeat": r,
                    "schedule": layout.split(":")[0]
                    .replace("colocated", "free")
                    .replace("single_thread_streams", "single_thread"),
                    "tpot_ms_sd": 0.5,
                }
                if layout.startswith("alone_"):
                    row["schedule"] = "free"
                rows.append(row)
    return pd.DataFrame(rows)


def make_tables(names, layouts, blocks=2):
    """(runs, scaling, interference, answers) of ``layouts`` over ``blocks`` blocks, the
    answers over the blocks with a ±5% interval."""
    runs = make_runs(names, layouts, blocks)
    scaling, interference, answers = [], [], []
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    v1 = {s: mean([tput(alone_layout(s), s, 1, r) for r in range(1, blocks + 1)]) for s in names}
    for s in names:
        answers.append(answer("v1", s, "tok/s", v1[s], 0.95 * v1[s], 1.05 * v1[s], blocks))
        subject = f"{alone_layout(s)}/{s}"
        answers.append(answer("throughput", subject, "tok/s", v1[s], 0.95 * v1[s],
                              1.05 * v1[s], blocks))  # fmt: skip
    for layout in layouts:
        if layout.startswith("alone_"):
            continue
        group = members_of(layout, names)
        k = len(group)
        totals = []
        for r in range(1, blocks + 1):
            alone = [tput(alone_layout(s), s, 1, r) for s in group]
            inside = [tput(layout, s, k, r) for s in group]
            total = sum(inside)
            totals.append(total)
            scaling.append(
                {"scenario": "short", "precision": "bf16", "repeat": r, "layout": layout,
                 "schedule": "free", "models": "+".join(group), "k": k, "v1_sum": sum(alone),
                 "v1_mean": sum(alone) / k, "v_total": total,
                 "growth_per_model": (total / (sum(alone) / k) - 1) / (k - 1),
                 "scaling_efficiency": total / sum(alone), "valid": True, "note": ""}
            )  # fmt: skip
            for s, a, i in zip(group, alone, inside, strict=True):
                interference.append(
                    {"scenario": "short", "precision": "bf16", "repeat": r, "layout": layout,
                     "schedule": "free", "victim": s,
                     "neighbours": "+".join(m for m in group if m != s),
                     "slowdown_throughput": a / i, "slowdown_ttft_p50": 1.1,
                     "slowdown_tpot_p50": 1.2, "slowdown_e2e_p50": 1.3, "valid": True}
                )  # fmt: skip
        total = mean(totals)
        v1_sum = sum(v1[s] for s in group)
        answers += [
            answer("v_total", layout, "tok/s", total, 0.95 * total, 1.05 * total, blocks),
            answer(
                "growth_per_model",
                layout,
                "fraction",
                (total / (v1_sum / k) - 1) / (k - 1),
                NAN,
                NAN,
                blocks,
            ),  # fmt: skip
            answer(
                "scaling_efficiency",
                layout,
                "ratio",
                total / v1_sum,
                0.9 * total / v1_sum,
                1.1 * total / v1_sum,
                blocks,
                "inconclusive",
                "inconclusive",
            ),  # fmt: skip
        ]
        for s in group:
            slow = v1[s] / mean([tput(layout, s, k, r) for r in range(1, blocks + 1)])
            answers += [
                answer(
                    "slowdown_throughput",
                    f"{layout}/{s}",
                    "ratio",
                    slow,
                    0.98 * slow,
                    1.02 * slow,
                    blocks,
                    "effect",
                    effect(slow),
                ),  # fmt: skip
                answer("throughput", f"{layout}/{s}", "tok/s", v1[s] / slow, NAN, NAN, blocks),
            ]
    return (
        runs,
        pd.DataFrame(scaling),
        pd.DataFrame(interference),
        pd.DataFrame(answers),
    )


def make_requests(runs: pd.DataFrame) -> pd.DataFrame:
    """Six calls per slot from the window's start (0.5 s): in a single-thread run the slots'
    calls one after the other (each 0.1 s), elsewhere every slot's call j at the same time."""
    rows = []
    for run_id, run in runs.groupby("run_id", sort=False):
        slots = list(run["slot"])
        single = run["layout"].iloc[0].startswith("single_thread")
        for i, r in enumerate(run.to_dict("records")):
            for call in range(6):
                start = 0.5 + (call * len(slots) + i) * 0.1 if single else 0.5 + call * 0.1
                rows.append(
                    {"run_id": run_id, "scenario": "short", "precision": "bf16",
                     "repeat": r["repeat"], "layout": r["layout"], "slot": r["slot"],
                     "call": call, "index": 0, "in_window": True, "submit_s": start,
                     "queue_ms": NAN, "ttft_ms": 20.0, "tpot_ms": 5.0, "e2e_ms": 95.0,
                     "itl_ms_mean": 5.0, "new_tokens": 16}
                )  # fmt: skip
    return pd.DataFrame(rows)


def render(runs, scaling, interference, answers, requests=None) -> str:
    return render_report(
        runs=runs,
        scaling=scaling,
        requests=make_requests(runs) if requests is None else requests,
        environment=ENVIRONMENT,
        title="n models",
        scenario_descriptions={},
        definitions=DEFINITIONS,
        answers_table=answers,
        interference_table=interference,
    )


THREE_LAYOUTS = [
    *(alone_layout(s) for s in THREE),
    "colocated:Big+Mid",
    "colocated:Big+Tiny",
    "colocated:Mid+Tiny",
    "colocated",
]


@pytest.fixture(scope="module")
def three():
    return make_tables(THREE, THREE_LAYOUTS)


@pytest.fixture(scope="module")
def three_html(three) -> str:
    return render(*three)


# ---------------------------------------------------------------------------------------------
# One, two, three models


@pytest.mark.parametrize(
    "names",
    [("Solo",), ("A", "B"), THREE],
    ids=["one", "two", "three"],
)
def test_the_report_renders_for_any_number_of_models(names):
    layouts = [*(alone_layout(s) for s in names), *(["colocated"] if len(names) > 1 else [])]
    BASE.setdefault("Solo", 90.0)
    runs, scaling, interference, answers = make_tables(names, layouts)
    html = render(runs, scaling, interference, answers)
    assert html.rstrip().endswith("</html>")
    assert "could not be drawn" not in html and "nan" not in section(html, "headline").lower()
    headline = unescape(section(html, "headline"))
    for s in names:
        assert f"<th>{s}</th>" in headline  # a column per model of the data
    if len(names) == 1:
        assert "short/bf16: one model, V1 Solo 91.3 (86.8–95.9) tok/s (nothing co-located)." in (
            headline
        )
        assert "Co-located (tok/s)" not in headline and 'id="schedules"' not in html
    else:
        assert "Scaling curve" in html and "Interference matrix" in html
        assert 'id="schedules"' not in html  # no lockstep, no single-thread run


def test_two_models_read_as_before_under_the_new_answer_names():
    runs, scaling, interference, answers = make_tables(("A", "B"), ["alone_A", "alone_B",
                                                                    "colocated"])  # fmt: skip
    headline = re.sub(r"<[^>]+>", "", unescape(section(render(runs, scaling, interference,
                                                              answers), "headline")))  # fmt: skip
    # growth_per_model of colocated: (V2 / mean V1 - 1) / (2 - 1), as growth was.
    assert "short/bf16: a second model adds +60% total throughput (V1 A 121.8" in headline
    assert "→ V2 " in headline and "V2 total (tok/s)" in headline and "Layout" not in headline


def test_three_models_name_their_layouts_and_grow_per_added_model(three_html):
    headline = re.sub(r"<[^>]+>", "", unescape(section(three_html, "headline")))
    # The full group: V3 = 0.6 × (40 + 80 + 160) × 1.015 = 170.5, mean V1 94.7: growth per
    # added model (170.5 / 94.7 − 1) / 2 = +40%; each model keeps 0.6: slows 1 / 0.6.
    assert (
        "short/bf16, Big+Mid+Tiny co-located: each added model adds +40% total throughput "
        "on average (V1 Big 40.6 (38.6–42.6), Mid 81.2 (77.1–85.3), Tiny 162.4 (154.3–170.5) "
        "→ V3 170.5 (162.0–179.0) tok/s); scaling efficiency 60% (54–66%) — inconclusive; "
        "Big slows 1.67× (95% CI 1.63–1.70), Mid 1.67× (95% CI 1.63–1.70), Tiny 1.67× "
        "(95% CI 1.63–1.70)."
    ) in headline
    # A subset of two: a second model, V2.
    assert "short/bf16, Big+Mid co-located: a second model adds +60% total throughput" in headline
    assert headline.count("Big slows") == 3  # Big is in three of the four layouts
    assert "Layout" in headline and "Growth per added model" in headline
    assert "Best scaling: short/bf16, Big+Mid co-located" in headline


# ---------------------------------------------------------------------------------------------
# The scaling curve and the interference matrix


def test_scaling_curve_values(three):
    runs, scaling, _, answers = three
    est = Estimates(prepare_answers(answers))
    data = curve_data([KEY], est, prepare_scaling(scaling), prepare_runs(runs), list(THREE))
    ones = data[data["k"] == 1].set_index("layout")
    assert ones.loc["alone_Tiny", "value"] == pytest.approx(160 * 1.015)
    full = data[data["layout"] == "colocated"].iloc[0]
    assert full["k"] == 3 and full["kind"] == "colocated"
    assert full["value"] == pytest.approx(0.6 * 280 * 1.015)
    assert (full["lo"], full["hi"]) == pytest.approx((0.95 * full["value"], 1.05 * full["value"]))
    assert full["ideal"] == pytest.approx(280 * 1.015)  # the sum of the three V1
    pairs = data[data["k"] == 2]
    assert sorted(pairs["layout"]) == ["colocated:Big+Mid", "colocated:Big+Tiny",
                                       "colocated:Mid+Tiny"]  # fmt: skip
    # Without answers.csv: scaling.csv's totals, the mean over blocks, no whiskers.
    plain = curve_data([KEY], Estimates(prepare_answers(None)), prepare_scaling(scaling),
                       prepare_runs(runs), list(THREE))  # fmt: skip
    plain_full = plain[plain["layout"] == "colocated"].iloc[0]
    assert plain_full["value"] == pytest.approx(full["value"]) and math.isnan(plain_full["lo"])

    fig = curve_figure(data, [KEY], True, list(THREE))
    ax = fig.axes[0]
    ideal = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"][0]
    mean_v1 = 280 * 1.015 / 3
    assert list(ideal.get_ydata()) == pytest.approx([0, mean_v1, 2 * mean_v1, 3 * mean_v1])
    ys = [y for ln in ax.get_lines() for y in ln.get_ydata()]
    assert any(y == pytest.approx(full["value"]) for y in ys)
    assert ax.get_xlabel() == "co-located models k"
    assert smallest_label_px(fig) >= 10


def test_interference_matrix_values(three):
    _, _, interference, answers = three
    est = Estimates(prepare_answers(answers))
    data = matrix_data([KEY], est, prepare_interference(interference), list(THREE))
    assert len(data) == 2 * 3 + 3  # three pairs of two, and the three together
    cell = data[(data["victim"] == "Big") & (data["layout"] == "colocated")].iloc[0]
    assert cell["value"] == pytest.approx(1 / 0.6) and cell["verdict_kind"] == "effect"
    fig = matrix_figure(data, [KEY], True, list(THREE))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(THREE)
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "Big+Mid co-located", "Big+Tiny co-located", "Mid+Tiny co-located",
        "Big+Mid+Tiny co-located",
    ]  # fmt: skip
    texts = [t.get_text() for t in ax.texts]
    assert "1.67×\n(1.63–1.70)\neffect" in texts  # Big next to Mid and Tiny
    assert len(texts) == 9  # a member's cells only: Tiny is not in Big+Mid
    assert smallest_label_px(fig) >= 10
    # Without answers.csv: interference.csv's mean over blocks.
    plain = matrix_data([KEY], Estimates(prepare_answers(None)),
                        prepare_interference(interference), list(THREE))  # fmt: skip
    big = plain[(plain["victim"] == "Big") & (plain["layout"] == "colocated")].iloc[0]
    assert big["value"] == pytest.approx(1 / 0.6) and big["verdict_kind"] == ""


def test_the_curve_and_matrix_are_in_the_figures_section(three_html):
    figures = section(three_html, "figures")
    for title in ("Scaling curve", "Interference matrix"):
        start = figures.index(f"<h3>{title}</h3>")
        assert figures[start : start + 400].count('src="data:image/png;base64,') == 1


# ---------------------------------------------------------------------------------------------
# Schedules


def schedule_answers(verdict: str = "effect", estimate: float = 1.10) -> pd.DataFrame:
    rows = []
    for layout in ("lockstep", "single_thread_streams"):
        kind, words = {
            "effect": ("effect", PAID),
            "equivalent": ("equivalent", "no detectable difference from free co-location (±3%)"),
            "inconclusive": ("inconclusive", "inconclusive at n = 2 blocks"),
        }[verdict]
        rows.append(answer("schedule_throughput_ratio", layout, "ratio", estimate,
                           estimate - 0.05, estimate + 0.05, 2, kind, words))  # fmt: skip
        rows.append(answer("schedule_tokens_per_j_ratio", layout, "ratio", 1.2, 1.1, 1.3, 2,
                           "effect", "1.20× (95% CI 1.10–1.30)"))  # fmt: skip
        for s in ("A", "B"):
            rows.append(answer("schedule_tpot_p50_ratio", f"{layout}/{s}", "ratio", 0.9, 0.85,
                               0.95, 2, "effect", "0.90× (95% CI 0.85–0.95)"))  # fmt: skip
            rows.append(answer("schedule_tpot_sd_ratio", f"{layout}/{s}", "ratio", 0.5, 0.4,
                               0.6, 2, "effect", "0.50× (95% CI 0.40–0.60)"))  # fmt: skip
    rows.append(answer("handoff_us", "lockstep", "us", 35.2, 30.1, 40.3, 2))
    return pd.DataFrame(rows)


SCHEDULED = ["alone_A", "alone_B", "colocated", "lockstep", "single_thread_streams"]


@pytest.fixture(scope="module")
def scheduled_html() -> str:
    runs, scaling, interference, answers = make_tables(("A", "B"), SCHEDULED)
    answers = pd.concat([answers, schedule_answers()], ignore_index=True)
    return render(runs, scaling, interference, answers)


def test_schedules_section_only_where_those_layouts_ran(scheduled_html, three_html):
    assert 'id="schedules"' not in three_html and 'href="#schedules"' not in three_html
    assert '<a href="#schedules">Schedules</a>' in scheduled_html
    order = [scheduled_html.index(f'<section id="{s}"') for s in ("figures", "schedules",
                                                                   "details")]  # fmt: skip
    assert order == sorted(order)


def test_schedules_table_has_the_comparisons_with_intervals_and_verdicts(scheduled_html):
    part = unescape(section(scheduled_html, "schedules"))
    table = part[part.index("<table") : part.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    body = [re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S) for r in rows[2:]]
    assert len(body) == 4  # two layouts × two models
    lockstep_a = [re.sub(r"<[^>]+>", " ", c).split() for c in body[0]]
    assert lockstep_a[2] == ["A+B", "lockstep"] and lockstep_a[3] == ["A+B", "co-located"]
    assert " ".join(lockstep_a[5]).startswith("1.10× (1.05–1.15)")  # throughput ratio
    assert PAID in " ".join(lockstep_a[5])  # its verdict
    assert " ".join(lockstep_a[7]) == "35.2 (30.1–40.3)"  # hand-off, µs
    assert " ".join(lockstep_a[9]).startswith("0.90× (0.85–0.95)")  # TPOT p50 ratio of A
    assert " ".join(lockstep_a[10]).startswith("0.50× (0.40–0.60)")  # TPOT sd ratio of A
    single_a = [re.sub(r"<[^>]+>", " ", c).split() for c in body[2]]
    assert single_a[2] == ["A+B", "single-thread"] and single_a[7] == ["–"]  # no hand-off


def test_schedules_sentence_says_whether_alternation_paid(scheduled_html):
    part = re.sub(r"<[^>]+>", "", unescape(section(scheduled_html, "schedules")))
    assert (
        "short/bf16, A+B lockstep: alternation paid for its hand-off on this machine — total "
        f"throughput {PAID} of A+B co-located, hand-off 35.2 (30.1–40.3) µs per turn; TPOT sd "
        "A 0.50× (0.40–0.60), B 0.50× (0.40–0.60)."
    ) in part
    names = ["A", "B"]
    for verdict, estimate, outcome, words in (
        ("effect", 0.8, "cost", "alternation did not pay for its hand-off"),
        ("equivalent", 1.0, "even", "alternation neither paid nor cost"),
        ("inconclusive", 1.05, "open", "whether alternation pays for its hand-off"),
    ):
        est = Estimates(prepare_answers(schedule_answers(verdict, estimate)))
        s = pay_sentence(KEY, "lockstep", est, names)
        assert s["outcome"] == outcome and words in s["text"]
    missing = pay_sentence(KEY, "lockstep", Estimates(prepare_answers(None)), names)
    assert missing["outcome"] is None and "no comparison with free co-location" in missing["text"]


def test_single_thread_timeline_shows_the_calls_serialise():
    runs, *_ = make_tables(("A", "B"), SCHEDULED)
    runs = prepare_runs(runs)
    requests = prepare_requests(make_requests(runs))
    single = call_bars(requests, "short/bf16/r1/single_thread_streams")
    free = call_bars(requests, "short/bf16/r1/colocated")
    assert len(single) == len(free) == 12  # six calls of each model

    def overlapping(calls: pd.DataFrame) -> int:
        ordered = calls.sort_values("start_s").to_dict("records")
        return sum(b["start_s"] < a["end_s"] for a, b in zip(ordered, ordered[1:], strict=False))

    assert overlapping(single) == 0 and overlapping(free) > 0
    first = single.iloc[0]
    assert (first["start_s"], first["first_s"], first["end_s"]) == pytest.approx((0.5, 0.52, 0.595))
    fig = timeline_figure(runs, requests, KEY, "single_thread_streams", ["A", "B"])
    left, right = fig.axes
    assert left.get_title(loc="left") == "A+B single-thread · r1"
    assert right.get_title(loc="left") == "A+B co-located · r1"
    assert len(left.patches) == 12 and len(right.patches) == 12
    assert smallest_label_px(fig) >= 10


def test_schedules_figure_in_the_section(scheduled_html):
    part = section(scheduled_html, "schedules")
    assert part.count('src="data:image/png;base64,') == 1  # single-thread only
    assert "could not be drawn" not in scheduled_html


# ---------------------------------------------------------------------------------------------
# Names, labels and colours from the data


def test_names_labels_and_colours_come_from_the_data():
    runs = prepare_runs(make_runs(THREE, THREE_LAYOUTS, 1))
    assert slot_names(runs) == list(THREE)
    assert run_label("colocated:Big+Mid", "Big") == "Big co-located (Big+Mid)"
    assert run_label("lockstep", "Big") == "Big lockstep"
    assert group_label("colocated", THREE) == "Big+Mid+Tiny co-located"
    assert throughput_bars(THREE)[-1] == "Big+Mid+Tiny co-located"
    assert throughput_bars(["Solo"]) == ["Solo alone"]
    many = [f"M{i}" for i in range(9)]
    colors = slot_colors(many)
    assert len({tuple(c) for c in colors.values()}) == 9  # one colour per model, any number
    paired = sns.color_palette("Paired")
    assert slot_colors(["A", "B"]) == {"A": paired[1], "B": paired[7]}  # as always
    assert len(palette(many)) == 2 * 9 + 1


def test_bar_figures_keep_readable_labels(three_html, three):
    from dualbench.report.bars import scaling_data, scaling_figure, throughput_data

    runs, scaling, interference, answers = three
    est = Estimates(prepare_answers(answers))
    names = list(THREE)
    data = throughput_data(prepare_runs(runs), prepare_scaling(scaling), est, names)
    assert set(data["bar"]) == {*(f"{s} alone" for s in names),
                                *(f"{s} co-located" for s in names),
                                "Big+Mid+Tiny co-located"}  # fmt: skip
    scale = scaling_data(prepare_scaling(scaling), prepare_interference(interference), [KEY],
                         set(), est, True, names)  # fmt: skip
    assert len(scale[scale["bar"] == "efficiency"]) == 4  # every free layout
    fig = scaling_figure(scale, names)
    assert smallest_label_px(fig) >= 10
