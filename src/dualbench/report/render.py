"""The report's assembly: the metrics tables in, the template's context built from the other
modules of dualbench.report, one self-contained HTML document out (DESIGN §8).

The page opens on the verdicts (dualbench.report.verdicts: one line per scenario × precision,
then a block per scenario with its settings as facts, dualbench.report.scenario_facts, and its
throughput figure); every answer, the figures and the sections follow.

``write_report`` reads the tables from the metrics directory by the names in
``dualbench.analysis.columns.METRICS_FILES``; ``render_report`` renders DataFrames, so the
report reads the same whether it gets the analysis DataFrames directly or the files. Tables
that older metrics lack (answers.csv, blocks.csv, the INT4 and telemetry tables, calibration
and the contention tables, interference.csv) are optional: without answers.csv the headline
and the bar figures show the per-block tables as they are; without calibration or contention
tables and roofline columns, the "Where is the wall" section (dualbench.report.wall) is left
out; without lockstep or single-thread runs, the "Schedules" section
(dualbench.report.schedules).

The models are the data's: the sorted unique ``slot`` values of runs.csv
(tables.slot_names), any number of them, passed to every module that lays out a column or a
colour per model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from dualbench.analysis.columns import METRICS_FILES
from dualbench.analysis.intervals import PERCENTILE_MIN_N
from dualbench.report.bars import (
    has_whiskers,
    latency_data,
    latency_figure,
    scaling_data,
    scaling_figure,
    throughput_data,
    throughput_figure,
)
from dualbench.report.details import blocks_rows, details, scenario_anchor
from dualbench.report.estimates import Estimates
from dualbench.report.figures import embedded_figure, figure_style, timeline_figure, ttft_figure
from dualbench.report.format import DASH, fmt_fixed, fmt_pct, fmt_ratio
from dualbench.report.headline import headline_tables
from dualbench.report.int4 import int4_section
from dualbench.report.layouts import slot_names
from dualbench.report.scaling import curve_data, curve_figure, matrix_data, matrix_figure
from dualbench.report.scenario_facts import describe
from dualbench.report.schedules import schedules_section
from dualbench.report.sessions import annotate
from dualbench.report.summary import answers
from dualbench.report.tables import (
    drifted_blocks,
    flagged_keys,
    interference_lookup,
    key_issues,
    prepare_answers,
    prepare_blocks,
    prepare_calibration,
    prepare_contention,
    prepare_contention_curve,
    prepare_contention_fits,
    prepare_interference,
    prepare_requests,
    prepare_roofline,
    prepare_runs,
    prepare_scaling,
    read_csv,
    run_lookup,
    run_problems,
    scaling_lookup,
    scenario_keys,
    unique_in_order,
)
from dualbench.report.telemetry import telemetry_section
from dualbench.report.verdicts import verdicts
from dualbench.report.wall import calibration_rows, wall_section

# render_report's optional tables -> their METRICS_FILES key. Metrics written before INT4,
# telemetry, repeat blocks and contention sweeps existed lack these files; the report leaves
# their sections out (without answers.csv it shows the per-block tables' figures, without
# intervals).
OPTIONAL_TABLES = {
    "precision_table": "precisions",
    "int4_table": "int4",
    "energy_table": "energy",
    "telemetry_table": "telemetry",
    "answers_table": "answers",
    "blocks_table": "blocks",
    "sessions_table": "sessions",
    "calibration_table": "calibration",
    "contention_table": "contention",
    "contention_curve_table": "contention_curve",
    "contention_fits_table": "contention_fits",
    "interference_table": "interference",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dualbench.report", "templates"),
        # Explicitly on: select_autoescape keys on the file extension, and ".j2" is not ".html".
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(tok=fmt_fixed, ms=fmt_fixed, ratio=fmt_ratio, pct=fmt_pct)
    return env


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    """environment.json as (dotted key, text) rows."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            yield from _flatten(v, key + ".")
        elif isinstance(v, list | tuple):
            scalar = all(not isinstance(x, Mapping | list | tuple) for x in v)
            yield key, ", ".join(map(str, v)) if scalar else json.dumps(v, default=str)
        elif v is None:
            yield key, DASH
        else:
            yield key, str(v) if not isinstance(v, Mapping) else "{}"


def render_report(
    runs: pd.DataFrame,
    scaling: pd.DataFrame,
    requests: pd.DataFrame,
    environment: dict,
    title: str,
    scenario_descriptions: dict[str, str],
    definitions: list[tuple[str, str]],
    precision_table: pd.DataFrame | None = None,
    int4_table: pd.DataFrame | None = None,
    energy_table: pd.DataFrame | None = None,
    telemetry_table: pd.DataFrame | None = None,
    hardware_notes: list[str] | None = None,
    answers_table: pd.DataFrame | None = None,
    blocks_table: pd.DataFrame | None = None,
    sessions_table: pd.DataFrame | None = None,
    calibration_table: pd.DataFrame | None = None,
    contention_table: pd.DataFrame | None = None,
    contention_curve_table: pd.DataFrame | None = None,
    contention_fits_table: pd.DataFrame | None = None,
    interference_table: pd.DataFrame | None = None,
    scenario_settings: dict[str, dict] | None = None,
) -> str:
    """The whole report as one self-contained HTML document (no network reference).

    ``hardware_notes``: what validation resolved against the machine (native16's dtype and
    why, dtypes the device only emulates), shown after the verdicts, beside every run's own
    warnings.
    ``scenario_settings``: each scenario's settings from the config (config.report_params),
    stated as facts above its free-text description."""
    runs = prepare_runs(runs)
    scaling = prepare_scaling(scaling)
    interference = prepare_interference(interference_table)
    requests = prepare_requests(requests)
    estimates = Estimates(prepare_answers(answers_table))
    blocks = prepare_blocks(blocks_table)
    calibration = prepare_calibration(calibration_table)
    environment = dict(environment or {})
    descriptions = dict(scenario_descriptions or {})
    settings = dict(scenario_settings or {})

    names = slot_names(runs)
    keys = scenario_keys(runs, scaling)
    scenarios = unique_in_order(k[0] for k in keys)
    precisions = unique_in_order(k[1] for k in keys)
    lookup = run_lookup(runs)
    scaling_by_key = scaling_lookup(scaling)
    interference_by_key = interference_lookup(interference)
    problems = run_problems(runs)
    scaling_problems = [r for r in scaling.to_dict("records") if not r["valid"]]
    drifted = drifted_blocks(blocks)
    issues = {key: key_issues(key, problems, scaling, drifted) for key in keys}
    flagged = flagged_keys(keys, problems, scaling)
    single = len(precisions) <= 1
    n_blocks = runs.groupby(["scenario", "precision"])["repeat"].nunique().max() if len(runs) else 0
    interval = (
        f"each bar the estimate over the blocks, its whisker the {estimates.confidence_text} "
        "interval (where two blocks or more)"
    )

    total = "V2" if len(names) == 2 else "V_total"
    with figure_style():
        tput = throughput_data(runs, scaling, estimates, names)
        latency = latency_data(runs, estimates, names)
        scale = scaling_data(scaling, interference, keys, flagged, estimates, single, names)
        curve = curve_data(keys, estimates, scaling, runs, names)
        matrix = matrix_data(keys, estimates, interference, names)
        figures = [
            embedded_figure(
                "Throughput",
                "Output tokens/s of each slot alone and co-located, and the co-located total "
                f"({total}){': ' + interval if has_whiskers(tput) else ''}. ⚠ marks a "
                "scenario with a failed or invalid run.",
                lambda: throughput_figure(tput, scenarios, precisions or [""], flagged, names),
            ),
            embedded_figure(
                "Latency",
                "TTFT and TPOT p50 per slot, alone and co-located; "
                + (
                    f"{interval}; with one block, the whisker reaches the run's p90."
                    if has_whiskers(latency) and estimates.has_intervals()
                    else "whiskers reach p90."
                ),
                lambda: latency_figure(latency, scenarios, precisions or [""], flagged, names),
            ),
            embedded_figure(
                "Scaling and interference",
                (
                    "Scaling efficiency (100% = no interference, 50% = the second model adds "
                    "nothing)"
                    if len(names) == 2
                    else "Scaling efficiency (100% = no interference, 100/k% = the k models "
                    "together give no more than one)"
                )
                + " and per-model slowdown (1.00 = no slowdown)"
                f"{': ' + interval if has_whiskers(scale) else ''}.",
                lambda: scaling_figure(scale, names),
            ),
            embedded_figure(
                "Scaling curve",
                "Total output tokens/s against the number of co-located models k: at k = 1 "
                "each model alone (V1), then the total of every layout of k models (filled; "
                "joined through the mean per k for free co-location), each with its "
                f"{estimates.confidence_text} interval where two blocks or more. Dashed: ideal "
                "linear scaling, k × the mean V1; hollow: each layout's own ideal, the sum "
                "of its models' V1.",
                lambda: curve_figure(curve, keys, single, names),
            ),
            embedded_figure(
                "Interference matrix",
                "Throughput slowdown (alone / in the layout, 1× = no slowdown) of each model "
                "(row) in each layout it ran in (column), with its interval and verdict; "
                "colour by value (red: slower, blue: faster), grey: not in that layout.",
                lambda: matrix_figure(matrix, keys, single, names),
            ),
            embedded_figure(
                "Overlap of co-located runs",
                "Per slot, first submit to last token; shaded, the co-located window in which "
                "tokens count.",
                lambda: timeline_figure(runs),
            ),
            embedded_figure(
                "TTFT distribution",
                "TTFT of every request that finished inside its run's window"
                + (", the blocks pooled." if n_blocks > 1 else "."),
                lambda: ttft_figure(requests, keys, single, names),
            ),
        ]

        verdict_figures = {
            s: embedded_figure(
                f"{s}: throughput",
                "Output tokens/s of each model alone (light) and co-located (dark), and their "
                f"total{': ' + interval if has_whiskers(tput) else ''}.",
                lambda s=s: throughput_figure(
                    tput[tput["x"] == s], [s], precisions or [""], flagged, names, compact=True
                ),
            )
            for s in scenarios
        }
    int4 = int4_section(precision_table, int4_table, estimates, names)
    roofline_runs = prepare_roofline(runs)
    wall = wall_section(
        roofline_runs,
        keys,
        calibration,
        prepare_contention(contention_table),
        prepare_contention_curve(contention_curve_table),
        prepare_contention_fits(contention_fits_table),
        estimates,
    )
    facts = {s: describe(settings.get(s)) for s in scenarios}
    shown_wall = wall is not None
    cards = verdicts(keys, estimates, names, roofline_runs, calibration, shown_wall, int4, issues)
    for card in cards:
        card["figure"] = verdict_figures[card["scenario"]]
        card["facts"] = facts[card["scenario"]]
        card["note"] = descriptions.get(card["scenario"], "")
        card["anchor"] = scenario_anchor(card["scenario"])
    annotate(cards, sessions_table)

    env_rows = list(_flatten({k: v for k, v in environment.items() if k != "config"}))
    config = environment.get("config")
    context = {
        "title": title,
        "summary": {
            "runs": runs["run_id"].nunique(),
            "scenarios": scenarios,
            "precisions": precisions,
            "backends": unique_in_order(b for b in runs["backend"] if b),
            "devices": unique_in_order(d for d in runs["device"] if d),
            "models": unique_in_order(
                f"{s}: {m}" for s, m in zip(runs["slot"], runs["model"], strict=True) if m
            ),
            "blocks": int(n_blocks),
        },
        "n_failed": sum(p["failed"] for p in problems),
        "n_invalid": sum(not p["failed"] for p in problems),
        "problems": problems,
        "scaling_problems": scaling_problems,
        "drifted": drifted,
        "answers": answers(
            keys, lookup, scaling_by_key, interference_by_key, issues, estimates, names
        ),
        "headline_tables": headline_tables(
            keys, issues, estimates, lookup, scaling_by_key, interference_by_key, names
        ),
        "verdicts": cards,
        "facts": facts,
        "has_intervals": estimates.has_intervals(),
        "confidence": estimates.confidence_text,
        "names": names,
        "figures": figures,
        "details": details(runs, scenarios, descriptions),
        "blocks": blocks_rows(blocks),
        "percentile_min_n": PERCENTILE_MIN_N,
        "int4": int4,
        "schedules": schedules_section(runs, requests, keys, estimates, names),
        "telemetry": telemetry_section(runs, energy_table, telemetry_table, estimates),
        "wall": wall,
        # None, not an empty table, where the metrics have no calibration.csv.
        "calibration": calibration_rows(calibration) if calibration_table is not None else None,
        "hardware_notes": unique_in_order(
            [
                *(hardware_notes or []),
                *(w for cell in runs["warnings"] if cell for w in cell.split("; ")),
            ]
        ),
        "env_rows": env_rows,
        "config_json": (
            json.dumps(config, indent=2, sort_keys=True, default=str) if config is not None else ""
        ),
        "definitions": [(str(n), str(t)) for n, t in (definitions or [])],
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    metrics_dir: Path,
    out_html: Path,
    title: str,
    scenario_descriptions: dict,
    definitions: list[tuple[str, str]],
    hardware_notes: list[str] | None = None,
    scenario_settings: dict[str, dict] | None = None,
) -> None:
    """Read the tables of dualbench.analysis from ``metrics_dir`` and write the report to
    ``out_html``."""
    metrics_dir, out_html = Path(metrics_dir), Path(out_html)
    html = render_report(
        runs=read_csv(metrics_dir / METRICS_FILES["runs"]),
        scaling=read_csv(metrics_dir / METRICS_FILES["scaling"]),
        requests=read_csv(metrics_dir / METRICS_FILES["requests"]),
        environment=json.loads((metrics_dir / METRICS_FILES["environment"]).read_text()),
        title=title,
        scenario_descriptions=scenario_descriptions,
        definitions=definitions,
        hardware_notes=hardware_notes,
        scenario_settings=scenario_settings,
        **{
            arg: read_csv(metrics_dir / METRICS_FILES[table])
            for arg, table in OPTIONAL_TABLES.items()
            if (metrics_dir / METRICS_FILES[table]).is_file()
        },
    )
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html, encoding="utf-8")
