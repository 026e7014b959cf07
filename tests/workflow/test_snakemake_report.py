"""Snakemake's own report of a finished pipeline (`snakemake --report report.zip`): it holds
dualbench's report and every metrics table, each in its category and from the job that wrote
it, and making it runs no job and touches no result."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from dualbench.analysis.columns import METRICS_FILES
from tests.helpers import snakemake

pytestmark = pytest.mark.e2e

REPORT = "results/report/report.html"
TABLES = {f"results/metrics/{file}" for file in METRICS_FILES.values()}
JOB_LINE = re.compile(r"^(?:local)?rule \w+:$", re.M)


def result_mtimes(workdir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}


def page_data(html: str, name: str):
    """The JSON that Snakemake's report page assigns to ``var <name>`` (its bundled scripts
    have variables of the same names, which hold no JSON)."""
    for match in re.finditer(rf"\bvar {name} = ", html):
        try:
            return json.JSONDecoder().raw_decode(html, match.end())[0]
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no `var {name} = <JSON>` in Snakemake's report page")


@pytest.fixture(scope="module")
def report_zip(pipeline, tmp_path_factory):
    """(the zip, Snakemake's output, the results' mtimes before and after)."""
    before = result_mtimes(pipeline)
    path = tmp_path_factory.mktemp("snakemake_report") / "report.zip"
    out = snakemake(pipeline, "--report", str(path)).stdout
    return path, out, before, result_mtimes(pipeline)


def test_the_zip_holds_our_report_and_every_metrics_table(pipeline, report_zip):
    path, _, _, _ = report_zip
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        # report/report.html is Snakemake's page; the results lie under data/raw/<id>/.
        assert "report/report.html" in names
        raw = {n.rsplit("/", 1)[1]: n for n in names if n.startswith("report/data/raw/")}
        assert set(raw) == {"report.html", *METRICS_FILES.values()}
        assert archive.read(raw["report.html"]) == (pipeline / REPORT).read_bytes()
        for file in METRICS_FILES.values():
            assert archive.read(raw[file]) == (pipeline / "results/metrics" / file).read_bytes()
        page = archive.read("report/report.html").decode()

    # Category -> subcategory ("Other": none) -> paths.
    categories = page_data(page, "categories")
    paths = {cat: {sub: set(p) for sub, p in subs.items()} for cat, subs in categories.items()}
    assert paths == {"Report": {"Other": {REPORT}}, "Metrics": {"Other": TABLES}}
    results = page_data(page, "results")
    assert results[REPORT]["job_properties"]["rule"] == "report"
    assert "self-contained" in results[REPORT]["caption"]
    for name, file in METRICS_FILES.items():
        result = results[f"results/metrics/{file}"]
        assert result["job_properties"]["rule"] == "aggregate"
        # Every table is described (workflow/rules/bench.smk: METRICS_REPORT_LABELS).
        assert result["labels"]["table"] == file
        assert result["labels"]["topic"] != "other", f"{name} has no labels for the report"
        assert result["labels"]["content"]
    # The front page: the workflow description (Snakefile: report:), linking both categories.
    front = page_data(page, "workflow_desc")
    assert "dualbench measures" in front
    assert "Metrics" in front and "Report" in front


def test_making_the_report_runs_no_job(report_zip):
    _, out, before, after = report_zip
    assert not JOB_LINE.search(out), out[-3000:]
    assert after == before


def test_a_single_html_report_works_too(pipeline, tmp_path):
    path = tmp_path / "report.html"
    snakemake(pipeline, "--report", str(path))
    results = page_data(path.read_text(), "results")
    assert set(results) == {REPORT, *TABLES}
    assert all(r["data_uri"].startswith("data:") for r in results.values())
