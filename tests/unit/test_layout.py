"""The package's layout rules, read from the source's imports (README, "Layout"):

- stages import only earlier stages (foundation < config < models < telemetry < measure <
  analysis < report < cli), never later ones;
- no import circle between modules, lazy imports inside functions included;
- no module imports another module's ``_private`` name;
- no module over MAX_LINES lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "src" / "dualbench"
MAX_LINES = 400
# Rank of each top-level part of the package: a module may import its own rank or lower.
FOUNDATION = (
    "errors",
    "hardware",
    "native_dtypes",
    "model_shapes",
    "provenance",
    "workload",
    "job_log",
    "backends",
)
RANKS = {
    **dict.fromkeys(FOUNDATION, 0),
    "config": 1,
    "models": 2,
    "telemetry": 3,
    "measure": 4,
    "analysis": 5,
    "report": 6,
    "cli": 7,
    "__main__": 7,
    "__init__": 0,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (dualbench.x.y -> x)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def imports(module: str) -> list[tuple[str, str | None]]:
    """(imported dualbench module, imported name or None) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("dualbench")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dualbench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                # `from dualbench.analysis import series` imports a module, not a name.
                found.append((sub, None) if sub in MODULES else (node.module, alias.name))
    return found


def test_the_package_is_read():
    assert {"dualbench.config", "dualbench.measure.runner", "dualbench.report.render"} <= set(
        MODULES
    )
    assert imports("dualbench.measure.worker")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_later_stage(module):
    rank = RANKS[part(module)]
    later = [
        target for target, _ in imports(module) if target in MODULES and RANKS[part(target)] > rank
    ]
    assert not later, f"{module} imports later stages: {later}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    private = [f"{t}.{n}" for t, n in imports(module) if n and n.startswith("_") and t != module]
    assert not private, f"{module} imports private names: {private}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concern"


def test_no_import_circle():
    graph = {m: {t for t, _ in imports(m) if t in MODULES and t != m} for m in MODULES}
    # A package's __init__ re-exporting its own modules is not a circle of concerns.
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m.startswith(t + ".") and t in MODULES)}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (circle := visit(t)):
                return circle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            circle = visit(m)
            assert circle is None, " -> ".join(circle)
