"""The conda environments (envs/*.yaml) install what pyproject.toml declares: the same
packages with the same version bounds, and torch at the version constraints.txt pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Extras an environment must carry besides the core dependencies.
ENV_EXTRAS = {"cuda.yaml": ["cuda"]}


def requirements(lines) -> dict[str, Requirement]:
    reqs = (Requirement(line) for line in lines if not line.startswith("-"))
    return {canonicalize_name(r.name): r for r in reqs}


def env_pip(path: Path) -> dict[str, Requirement]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    return requirements(pip)


def torch_pin() -> str:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    (pin,) = [line for line in lines if line.startswith("torch==")]
    return pin.removeprefix("torch==")


def test_there_are_environments():
    assert {p.name for p in ENVS} == {"cpu.yaml", "cuda.yaml", "npu.yaml"}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_has_every_dependency_with_the_same_bounds(env):
    declared = requirements(PYPROJECT["dependencies"])
    for extra in ENV_EXTRAS.get(env.name, []):
        declared |= requirements(PYPROJECT["optional-dependencies"][extra])
    installed = env_pip(env)
    missing = sorted(set(declared) - set(installed))
    assert not missing, f"{env.name} lacks {missing}"
    for name, req in declared.items():
        if name == "torch":
            continue
        assert installed[name].specifier == req.specifier, (
            f"{env.name}: {installed[name]} but pyproject.toml says {req}"
        )


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_the_project_torch(env):
    (spec,) = [str(r.specifier) for r in requirements(PYPROJECT["dependencies"]).values()
               if r.name == "torch"]  # fmt: skip
    pinned = env_pip(env)["torch"]
    version = str(pinned.specifier).removeprefix("==")
    assert version.split("+")[0] == torch_pin()
    assert Requirement(f"torch{spec}").specifier.contains(version.split("+")[0])
