"""Shared fixtures of the unit tests: one tiny synthetic Llama 3.2 checkpoint per session."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = "synthetic:llama-3.2-tiny"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """``synthetic:llama-3.2-tiny`` (seed 0) fetched once; tests must treat it as read-only."""
    from dualbench.models.sources import fetch

    out = tmp_path_factory.mktemp("tiny") / "base"
    fetch(TINY, out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_int4(tiny_model, tmp_path_factory) -> Path:
    """The tiny model converted to the INT4 artifact with the default scheme (group 128,
    asymmetric, lm_head kept 16-bit); read-only."""
    from dualbench.models.convert import convert

    out = tmp_path_factory.mktemp("tiny-int4") / "int4"
    convert(tiny_model, "int4", out)
    return out
