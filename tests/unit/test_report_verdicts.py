"""The report's first screen: a verdict per scenario × precision from the slowdown answers,
the scenario's settings stated as facts (the free-text description only as a note), and
figures that never shrink below readable labels."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from dualbench import config
from dualbench.report.estimates import Estimates
from dualbench.report.figures import DPI, READABLE_PX, TICK_PT, embedded_figure, readable
from dualbench.report.scenario_facts import describe
from dualbench.report.tables import prepare_answers
from dualbench.report.verdicts import key_verdict, verdicts
from tests.helpers import tiny_config
from tests.unit.test_report import answer, block_answers, write_metrics

KEY = ("short", "bf16")


def slowdowns(kinds: dict[str, tuple[str, str]], n: int = 3) -> Estimates:
    """Estimates with, per model, a throughput and a TPOT slowdown of the given (throughput
    kind, TPOT kind)."""
    rows = []
    for slot, (tput, tpot) in kinds.items():
        subject = f"colocated/{slot}"
        rows.append(answer("slowdown_throughput", subject, "ratio", 1.1, 1.0, 1.2, n, tput, tput))
        rows.append(answer("slowdown_tpot_p50", subject, "ratio", 1.1, 1.0, 1.2, n, tpot, tpot))
    return Estimates(prepare_answers(pd.DataFrame(rows)))


@pytest.mark.parametrize(
    "kinds, expected",
    [
        ({"A": ("effect", "equivalent"), "B": ("equivalent", "equivalent")}, "detected"),
        ({"A": ("equivalent", "inconclusive"), "B": ("effect", "equivalent")}, "detected"),
        ({"A": ("equivalent", "equivalent"), "B": ("equivalent", "equivalent")}, "clear"),
        ({"A": ("equivalent", "inconclusive"), "B": ("equivalent", "equivalent")}, "inconclusive"),
    ],
)
def test_the_verdict_is_the_strongest_finding_of_every_slowdown(kinds, expected):
    assert key_verdict(slowdowns(kinds), KEY, ["A", "B"])[1] == expected


def test_one_block_is_inconclusive_and_says_why():
    est = slowdowns({"A": ("effect", "effect"), "B": ("equivalent", "equivalent")}, n=1)
    assert key_verdict(est, KEY, ["A", "B"]) == (
        "inconclusive (one block)",
        "inconclusive",
    )


def test_without_slowdown_answers_nothing_is_judged():
    empty = Estimates(prepare_answers(None))
    assert key_verdict(empty, KEY, ["A", "B"]) == ("not judged", "unjudged")


def test_a_verdict_carries_the_gain_and_each_slowdown_with_their_intervals():
    est = Estimates(prepare_answers(block_answers(3)))
    (card,) = verdicts([KEY], est, ["A", "B"], pd.DataFrame(), pd.DataFrame(), False, None, {})
    (key,) = card["keys"]
    assert key["kind"] == "detected"  # A's throughput slowdown is an effect
    assert key["adds"]["short"].startswith("+67%") and "(" in key["adds"]["short"]
    assert key["adds"]["text"].startswith("A second model adds +67%")
    a, b = key["slowdowns"]
    assert a["slot"] == "A" and ("1.12× (95% CI 1.08–1.16)", "v-effect") in a["parts"]
    assert b["slot"] == "B" and any(cls == "v-equivalent" for _, cls in b["parts"])


def test_facts_state_the_settings_and_each_slots_overrides():
    settings = json.loads(config.report_params(config.validate(tiny_config())))["settings"]
    facts = describe(settings["mixed"])
    assert facts["common"] == (
        "prompt 16 tokens · 8 new tokens · batch 1 · closed loop (each model sends its next "
        "request when one returns) · at least 2 requests per model"
    )
    assert facts["slots"] == [("B", "prompt 96 tokens, batch 2")]
    assert facts["window"] == "1 s trials"
    poisson = describe({"arrival": {"process": "poisson", "rate_rps": 2.5}})
    gamma = describe({"arrival": {"process": "gamma", "rate_rps": 2, "burstiness": 0.5}})
    assert poisson["common"] == "open loop: Poisson arrivals at 2.5 req/s"
    assert gamma["common"] == "open loop: gamma (burstiness 0.5) arrivals at 2 req/s"


def test_a_stale_description_never_replaces_the_facts(tmp_path):
    from dualbench.analysis.definitions import DEFINITIONS
    from dualbench.report.render import write_report

    metrics = write_metrics(tmp_path / "metrics", blocks=3)
    out = tmp_path / "report.html"
    short = {"prompt_tokens": 1024, "new_tokens": 16, "batch_size": 1, "arrival": None}
    settings = {"short": {**short, "min_requests": 3, "trial_s": 8, "slots": {}}}
    stale = {"short": "4096-token prompts: memory bandwidth"}
    write_report(metrics, out, "t", stale, DEFINITIONS, [], settings)
    html = out.read_text()
    verdict = html[html.index('id="verdict-short"') : html.index('id="headline"')]
    assert verdict.index("prompt 1,024 tokens") < verdict.index("4096-token prompts")
    assert "Note (the config's description): 4096-token prompts" in verdict
    # Every figure says how small its labels get and never shrinks below 10 px labels.
    assert html.count("data-label-px=") == html.count("<img ")


def test_a_figure_never_shrinks_below_readable_labels():
    fig, ax = plt.subplots(figsize=(9.0, 3.0))
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x")
    readable(ax)
    f = embedded_figure("t", "c", lambda: fig)
    assert f["label_px"] == pytest.approx(TICK_PT * DPI / 72, abs=0.05)
    assert f["width"] > f["min_width"] > 0
    assert f["label_px"] * f["min_width"] / f["width"] >= READABLE_PX
    assert f["label_px"] * (f["min_width"] - 1) / f["width"] < READABLE_PX
    assert not math.isnan(f["height"])
