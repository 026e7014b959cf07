"""Shared fixtures of the unit tests: one tiny synthetic Llama 3.2 checkpoint per session."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = "synthetic:llama-3.2-tiny"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """``synthetic:llama-3.2-tiny`` (seed 0) fetched once; tests must treat it as read-only."""
    from dualbench.sources import fetch

    out = tmp_path_factory.mktemp("tiny") / "base"
    fetch(TINY, out, seed=0)
    return out
