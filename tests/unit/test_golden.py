"""Regression: the committed run records aggregate to the committed tables, byte for byte.

How the tables were produced, and each deliberate regeneration since, is in
tests/fixtures/golden/README.md; any other change to a number, a column or a row order fails
here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dualbench.analysis.aggregate import aggregate

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
MODELS = {"A": "synthetic:llama-3.2-tiny", "B": "synthetic:llama-3.2-tiny"}
EXPECTED = sorted(p.name for p in (GOLDEN / "metrics").iterdir())


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("metrics")
    aggregate(sorted((GOLDEN / "runs").rglob("run.json"), key=str), out, MODELS)
    return out


def test_the_same_files_are_written(written):
    assert sorted(p.name for p in written.iterdir()) == EXPECTED
    assert "runs.csv" in EXPECTED and "environment.json" in EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_each_file_is_identical(written, name):
    assert (written / name).read_text() == (GOLDEN / "metrics" / name).read_text()
